using System.Buffers.Binary;

namespace EffServe.Core.Tensors;

public sealed partial class NpyArray
{
    /// <summary>
    /// The class index stored for sample <paramref name="sample"/> of a labels array: one integer per
    /// sample, of any integer type. Throws <see cref="FormatException"/>, with a message that names
    /// what is wrong, when the array is not such a labels array.
    /// </summary>
    public long ClassIndex(int sample)
    {
        var size = DataType.ElementSize();
        if (Shape.Count == 0 || RowBytes != size)
        {
            throw new FormatException($"labels must hold one class index per sample; shape is {Shapes.Format(Shape)}.");
        }

        var bytes = Data.AsSpan(sample * size, size);
        return DataType switch
        {
            DataType.Int64 => BinaryPrimitives.ReadInt64LittleEndian(bytes),
            DataType.Int32 => BinaryPrimitives.ReadInt32LittleEndian(bytes),
            DataType.Int16 => BinaryPrimitives.ReadInt16LittleEndian(bytes),
            DataType.Int8 => (sbyte)bytes[0],
            DataType.UInt8 => bytes[0],
            DataType.UInt16 => BinaryPrimitives.ReadUInt16LittleEndian(bytes),
            DataType.UInt32 => BinaryPrimitives.ReadUInt32LittleEndian(bytes),
            DataType.UInt64 => checked((long)BinaryPrimitives.ReadUInt64LittleEndian(bytes)),
            _ => throw new FormatException($"labels must be integer class indices, not {DataType.ToWireName()}."),
        };
    }
}
