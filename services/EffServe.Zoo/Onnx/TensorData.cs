using System.Buffers.Binary;
using System.Runtime.InteropServices;
using EffServe.Zoo.OnnxFormat;
using Google.Protobuf;

namespace EffServe.Zoo.Onnx;

/// <summary>Reads the elements of ONNX tensors as .NET arrays, and builds tensors from arrays.</summary>
public static class TensorData
{
    public static long ElementCount(TensorProto tensor)
    {
        long count = 1;
        foreach (var d in tensor.Dims)
        {
            count = checked(count * d);
        }

        return count;
    }

    /// <summary>The elements of a FLOAT, FLOAT16 or DOUBLE tensor as floats.</summary>
    public static float[] ToFloats(TensorProto tensor)
    {
        var count = checked((int)ElementCount(tensor));
        var raw = RawBytes(tensor);
        switch (tensor.DataType)
        {
            case ElementTypes.Float:
                if (raw is not null)
                {
                    return MemoryMarshal.Cast<byte, float>(raw).ToArray();
                }

                return [.. tensor.FloatData];
            case ElementTypes.Float16:
                var halves = new float[count];
                for (var i = 0; i < count; i++)
                {
                    halves[i] = (float)(raw is not null
                        ? BinaryPrimitives.ReadHalfLittleEndian(raw.AsSpan(i * 2))
                        : BitConverter.UInt16BitsToHalf((ushort)tensor.Int32Data[i]));
                }

                return halves;
            case ElementTypes.Double:
                var doubles = raw is not null ? MemoryMarshal.Cast<byte, double>(raw).ToArray() : [.. tensor.DoubleData];
                return Array.ConvertAll(doubles, d => (float)d);
            default:
                throw new InvalidDataException($"tensor '{tensor.Name}' holds {ElementTypes.Name(tensor.DataType)}, not floating-point values.");
        }
    }

    /// <summary>The elements of an integer tensor (INT8 to INT64, UINT8 to UINT32, BOOL) as longs.</summary>
    public static long[] ToInt64s(TensorProto tensor)
    {
        var count = checked((int)ElementCount(tensor));
        var raw = RawBytes(tensor);
        var values = new long[count];
        switch (tensor.DataType)
        {
            case ElementTypes.Int64:
                return raw is not null ? MemoryMarshal.Cast<byte, long>(raw).ToArray() : [.. tensor.Int64Data];
            case ElementTypes.Int32:
                for (var i = 0; i < count; i++)
                {
                    values[i] = raw is not null ? BinaryPrimitives.ReadInt32LittleEndian(raw.AsSpan(i * 4)) : tensor.Int32Data[i];
                }

                return values;
            case ElementTypes.Int8:
                for (var i = 0; i < count; i++)
                {
                    values[i] = raw is not null ? (sbyte)raw[i] : tensor.Int32Data[i];
                }

                return values;
            case ElementTypes.UInt8:
            case (int)TensorProto.Types.DataType.Bool:
                for (var i = 0; i < count; i++)
                {
                    values[i] = raw is not null ? raw[i] : tensor.Int32Data[i];
                }

                return values;
            case (int)TensorProto.Types.DataType.Int16:
                for (var i = 0; i < count; i++)
                {
                    values[i] = raw is not null ? BinaryPrimitives.ReadInt16LittleEndian(raw.AsSpan(i * 2)) : tensor.Int32Data[i];
                }

                return values;
            case (int)TensorProto.Types.DataType.Uint16:
                for (var i = 0; i < count; i++)
                {
                    values[i] = raw is not null ? BinaryPrimitives.ReadUInt16LittleEndian(raw.AsSpan(i * 2)) : tensor.Int32Data[i];
                }

                return values;
            case (int)TensorProto.Types.DataType.Uint32:
                for (var i = 0; i < count; i++)
                {
                    values[i] = raw is not null ? BinaryPrimitives.ReadUInt32LittleEndian(raw.AsSpan(i * 4)) : (long)tensor.Uint64Data[i];
                }

                return values;
            default:
                throw new InvalidDataException($"tensor '{tensor.Name}' holds {ElementTypes.Name(tensor.DataType)}, not integers.");
        }
    }

    public static TensorProto FromFloats(string name, IReadOnlyList<long> dims, ReadOnlySpan<float> values) =>
        Raw(name, ElementTypes.Float, dims, MemoryMarshal.AsBytes(values));

    /// <summary>A FLOAT16 tensor of <paramref name="values"/>, each rounded to the nearest half.</summary>
    public static TensorProto FromFloatsAsHalf(string name, IReadOnlyList<long> dims, ReadOnlySpan<float> values)
    {
        var bytes = new byte[values.Length * 2];
        for (var i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteHalfLittleEndian(bytes.AsSpan(i * 2), (Half)values[i]);
        }

        return Raw(name, ElementTypes.Float16, dims, bytes);
    }

    public static TensorProto FromInt8s(string name, IReadOnlyList<long> dims, ReadOnlySpan<sbyte> values) =>
        Raw(name, ElementTypes.Int8, dims, MemoryMarshal.AsBytes(values));

    public static TensorProto FromUInt8s(string name, IReadOnlyList<long> dims, ReadOnlySpan<byte> values) =>
        Raw(name, ElementTypes.UInt8, dims, values);

    public static TensorProto FromInt32s(string name, IReadOnlyList<long> dims, ReadOnlySpan<int> values) =>
        Raw(name, ElementTypes.Int32, dims, MemoryMarshal.AsBytes(values));

    public static TensorProto FromInt64s(string name, IReadOnlyList<long> dims, ReadOnlySpan<long> values) =>
        Raw(name, ElementTypes.Int64, dims, MemoryMarshal.AsBytes(values));

    /// <summary>A scalar (rank 0) FLOAT tensor.</summary>
    public static TensorProto Scalar(string name, float value) => FromFloats(name, [], [value]);

    private static TensorProto Raw(string name, int elementType, IReadOnlyList<long> dims, ReadOnlySpan<byte> bytes)
    {
        var tensor = new TensorProto { Name = name, DataType = elementType, RawData = ByteString.CopyFrom(bytes) };
        tensor.Dims.AddRange(dims);
        return tensor;
    }

    /// <summary>The little-endian element bytes when the tensor stores them in raw_data; null for the typed lists.</summary>
    private static byte[]? RawBytes(TensorProto tensor)
    {
        if (tensor.DataLocation == TensorProto.Types.DataLocation.External)
        {
            throw new InvalidDataException($"tensor '{tensor.Name}' keeps its data in an external file that was not loaded.");
        }

        if (!tensor.RawData.IsEmpty)
        {
            return tensor.RawData.ToByteArray();
        }

        if (ElementCount(tensor) > 0 && !HasTypedData(tensor))
        {
            throw new InvalidDataException($"tensor '{tensor.Name}' has no data.");
        }

        return null;
    }

    private static bool HasTypedData(TensorProto t) =>
        t.FloatData.Count + t.Int32Data.Count + t.Int64Data.Count + t.DoubleData.Count + t.Uint64Data.Count + t.StringData.Count > 0;
}
