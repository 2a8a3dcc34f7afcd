namespace EffServe.Core.Tensors;

/// <summary>
/// A tensor travelling through the service. Fixed-size types hold their row-major little-endian
/// element bytes in <see cref="Data"/>; BYTES tensors hold one entry per element in <see cref="Strings"/>.
/// </summary>
public sealed class NamedTensor
{
    private NamedTensor(string name, DataType dataType, long[] shape, ReadOnlyMemory<byte> data, IReadOnlyList<ReadOnlyMemory<byte>>? strings)
    {
        Name = name;
        DataType = dataType;
        Shape = shape;
        Data = data;
        Strings = strings;
    }

    public string Name { get; }

    public DataType DataType { get; }

    public long[] Shape { get; }

    public ReadOnlyMemory<byte> Data { get; }

    public IReadOnlyList<ReadOnlyMemory<byte>>? Strings { get; }

    public long ElementCount => Shapes.ElementCount(Shape);

    public static NamedTensor FromBytes(string name, DataType dataType, long[] shape, ReadOnlyMemory<byte> data)
    {
        if (!dataType.IsFixedSize())
        {
            throw new ArgumentException("BYTES tensors hold strings; use FromStrings.", nameof(dataType));
        }

        var expected = Shapes.ElementCount(shape) * dataType.ElementSize();
        if (data.Length != expected)
        {
            throw new ArgumentException($"Tensor '{name}' of {dataType.ToWireName()} {Shapes.Format(shape)} needs {expected} bytes, got {data.Length}.", nameof(data));
        }

        return new NamedTensor(name, dataType, shape, data, null);
    }

    public static NamedTensor FromStrings(string name, long[] shape, IReadOnlyList<ReadOnlyMemory<byte>> strings)
    {
        if (strings.Count != Shapes.ElementCount(shape))
        {
            throw new ArgumentException($"Tensor '{name}' of BYTES {Shapes.Format(shape)} needs {Shapes.ElementCount(shape)} elements, got {strings.Count}.", nameof(strings));
        }

        return new NamedTensor(name, DataType.Bytes, shape, ReadOnlyMemory<byte>.Empty, strings);
    }
}
