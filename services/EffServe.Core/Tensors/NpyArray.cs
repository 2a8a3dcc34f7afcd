using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace EffServe.Core.Tensors;

/// <summary>
/// A tensor read from or written to NumPy's .npy format (versions 1.0 to 3.0): little-endian,
/// C order, fixed-size element types. This is the format of a zoo model's evaluation set.
/// </summary>
public sealed partial class NpyArray
{
    private static ReadOnlySpan<byte> Magic => [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];

    private static readonly (string Descr, DataType Type)[] s_descrs =
    [
        ("|b1", DataType.Bool), ("|u1", DataType.UInt8), ("<u2", DataType.UInt16), ("<u4", DataType.UInt32),
        ("<u8", DataType.UInt64), ("|i1", DataType.Int8), ("<i2", DataType.Int16), ("<i4", DataType.Int32),
        ("<i8", DataType.Int64), ("<f2", DataType.Fp16), ("<f4", DataType.Fp32), ("<f8", DataType.Fp64),
    ];

    public NpyArray(DataType dataType, IReadOnlyList<long> shape, byte[] data)
    {
        if (!dataType.IsFixedSize() || dataType == DataType.Bf16)
        {
            throw new ArgumentException($"{dataType.ToWireName()} has no .npy representation.", nameof(dataType));
        }

        var expected = checked(Shapes.ElementCount(shape) * dataType.ElementSize());
        if (data.LongLength != expected)
        {
            throw new ArgumentException($"Shape {Shapes.Format(shape)} of {dataType.ToWireName()} needs {expected} bytes, got {data.LongLength}.", nameof(data));
        }

        DataType = dataType;
        Shape = shape;
        Data = data;
    }

    public DataType DataType { get; }

    public IReadOnlyList<long> Shape { get; }

    /// <summary>Row-major little-endian element bytes.</summary>
    public byte[] Data { get; }

    /// <summary>Bytes of one entry along the first dimension.</summary>
    public int RowBytes => Shape.Count == 0 ? Data.Length : (int)(Data.LongLength / Math.Max(1, Shape[0]));

    public static NpyArray Read(string path)
    {
        try
        {
            return Parse(File.ReadAllBytes(path));
        }
        catch (FormatException e)
        {
            throw new FormatException($"{path}: {e.Message}", e);
        }
    }

    public static NpyArray Parse(ReadOnlySpan<byte> file)
    {
        try
        {
            return ParseChecked(file);
        }
        catch (OverflowException)
        {
            throw new FormatException("the header describes an array too large to address (corrupt header?).");
        }
    }

    private static NpyArray ParseChecked(ReadOnlySpan<byte> file)
    {
        if (file.Length < 10 || !file[..6].SequenceEqual(Magic))
        {
            throw new FormatException("not a .npy file (the magic string \\x93NUMPY is missing).");
        }

        int major = file[6];
        int headerLength;
        int headerStart;
        if (major == 1)
        {
            headerLength = BinaryPrimitives.ReadUInt16LittleEndian(file[8..]);
            headerStart = 10;
        }
        else if (major is 2 or 3)
        {
            if (file.Length < 12)
            {
                throw new FormatException("truncated .npy header.");
            }

            var length = BinaryPrimitives.ReadUInt32LittleEndian(file[8..]);
            if (length > int.MaxValue - 12)
            {
                throw new FormatException("truncated .npy header.");
            }

            headerLength = (int)length;
            headerStart = 12;
        }
        else
        {
            throw new FormatException($".npy version {major} is not supported (1, 2 and 3 are).");
        }

        if ((long)file.Length < (long)headerStart + headerLength)
        {
            throw new FormatException("truncated .npy header.");
        }

        var header = Encoding.Latin1.GetString(file.Slice(headerStart, headerLength));
        var descr = DescrPattern().Match(header);
        var order = FortranPattern().Match(header);
        var shapeMatch = ShapePattern().Match(header);
        if (!descr.Success || !order.Success || !shapeMatch.Success)
        {
            throw new FormatException($"unreadable .npy header: {header.Trim()}");
        }

        if (order.Groups[1].Value == "True")
        {
            throw new FormatException("Fortran-ordered arrays are not supported; save in C order.");
        }

        var type = TypeOf(descr.Groups[1].Value);
        var shape = shapeMatch.Groups[1].Value
            .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(s => long.Parse(s, NumberStyles.None, CultureInfo.InvariantCulture))
            .ToArray();
        var dataStart = headerStart + headerLength;
        var expected = checked(Shapes.ElementCount(shape) * type.ElementSize());
        if (file.Length - dataStart != expected)
        {
            throw new FormatException($"shape {Shapes.Format(shape)} of {type.ToWireName()} needs {expected} data bytes, the file has {file.Length - dataStart}.");
        }

        return new NpyArray(type, shape, file[dataStart..].ToArray());
    }

    /// <summary>Writes the array as .npy version 1.0.</summary>
    public void Write(Stream stream)
    {
        var descr = s_descrs.First(d => d.Type == DataType).Descr;
        var dims = Shape.Count == 1 ? $"{Shape[0]}," : string.Join(", ", Shape);
        var text = $"{{'descr': '{descr}', 'fortran_order': False, 'shape': ({dims}), }}";
        var unpadded = 10 + text.Length + 1;
        var padded = (unpadded + 63) / 64 * 64;
        text = text.PadRight(padded - 10 - 1) + "\n";
        Span<byte> prefix = stackalloc byte[10];
        Magic.CopyTo(prefix);
        prefix[6] = 1;
        prefix[7] = 0;
        BinaryPrimitives.WriteUInt16LittleEndian(prefix[8..], (ushort)text.Length);
        stream.Write(prefix);
        stream.Write(Encoding.Latin1.GetBytes(text));
        stream.Write(Data);
    }

    private static DataType TypeOf(string descr)
    {
        // NumPy writes one-byte types with '|' and may write '<' or '=' for them too.
        var normalised = descr.Length == 3 && descr[2] == '1' ? "|" + descr[1..] : descr.Replace('=', '<');
        foreach (var (d, t) in s_descrs)
        {
            if (d == normalised)
            {
                return t;
            }
        }

        throw new FormatException($"element type '{descr}' is not supported (little-endian bool, int, uint and float are).");
    }

    [GeneratedRegex(@"'descr'\s*:\s*'([^']+)'")]
    private static partial Regex DescrPattern();

    [GeneratedRegex(@"'fortran_order'\s*:\s*(True|False)")]
    private static partial Regex FortranPattern();

    [GeneratedRegex(@"'shape'\s*:\s*\(([^)]*)\)")]
    private static partial Regex ShapePattern();
}
