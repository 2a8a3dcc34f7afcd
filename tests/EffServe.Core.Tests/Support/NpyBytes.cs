using System.Buffers.Binary;
using System.Text;
using EffServe.Core.Tensors;

namespace EffServe.Core.Tests.Support;

/// <summary>Builds .npy files by hand, including broken ones, independently of NpyArray.Write.</summary>
internal static class NpyBytes
{
    /// <summary>The six bytes every .npy file starts with: 0x93 then ASCII "NUMPY".</summary>
    public static ReadOnlySpan<byte> Magic => [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    /// <summary>A version 1.0 file with the given header dictionary text and data bytes.</summary>
    public static byte[] Version1(string header, byte[] data) => Build(1, header, data);

    /// <summary>A version 2.0 file (four-byte header length) with the given header text and data bytes.</summary>
    public static byte[] Version2(string header, byte[] data) => Build(2, header, data);

    public static string Header(string descr, string shape, bool fortranOrder = false) =>
        $"{{'descr': '{descr}', 'fortran_order': {(fortranOrder ? "True" : "False")}, 'shape': {shape}, }}";

    /// <summary>Deterministic, non-trivial element bytes for a shape.</summary>
    public static byte[] Pattern(DataType type, IReadOnlyList<long> shape)
    {
        var data = new byte[Shapes.ElementCount(shape) * type.ElementSize()];
        for (var i = 0; i < data.Length; i++)
        {
            data[i] = (byte)((i * 37) + 11);
        }

        return data;
    }

    public static byte[] Save(NpyArray array)
    {
        using var stream = new MemoryStream();
        array.Write(stream);
        return stream.ToArray();
    }

    private static byte[] Build(byte major, string header, byte[] data)
    {
        var prefixLength = major == 1 ? 10 : 12;
        var text = header + "\n";
        var padded = (prefixLength + text.Length + 63) / 64 * 64;
        text = header.PadRight(padded - prefixLength - 1) + "\n";
        var headerBytes = Encoding.Latin1.GetBytes(text);

        var file = new byte[prefixLength + headerBytes.Length + data.Length];
        Magic.CopyTo(file);
        file[6] = major;
        file[7] = 0;
        if (major == 1)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(file.AsSpan(8), (ushort)headerBytes.Length);
        }
        else
        {
            BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(8), (uint)headerBytes.Length);
        }

        headerBytes.CopyTo(file, prefixLength);
        data.CopyTo(file, prefixLength + headerBytes.Length);
        return file;
    }
}
