using System.Buffers.Binary;

namespace EffServe.Contracts.Inference;

/// <summary>Moves fixed-size tensor elements between raw little-endian bytes and the protocol's typed contents.</summary>
public static class TypedContents
{
    /// <summary>
    /// The typed contents holding <paramref name="data"/>, the row-major little-endian elements of a
    /// tensor of protocol datatype <paramref name="datatype"/>; null for datatypes without a typed
    /// field (FP16, BF16) and for BYTES, whose elements are not fixed-size.
    /// </summary>
    public static InferTensorContents? FromRaw(string datatype, ReadOnlySpan<byte> data)
    {
        var size = datatype switch
        {
            "BOOL" or "UINT8" or "INT8" => 1,
            "UINT16" or "INT16" => 2,
            "UINT32" or "INT32" or "FP32" => 4,
            "UINT64" or "INT64" or "FP64" => 8,
            _ => 0,
        };
        if (size == 0)
        {
            return null;
        }

        var c = new InferTensorContents();
        for (var offset = 0; offset + size <= data.Length; offset += size)
        {
            var e = data.Slice(offset, size);
            switch (datatype)
            {
                case "BOOL": c.BoolContents.Add(e[0] != 0); break;
                case "UINT8": c.UintContents.Add(e[0]); break;
                case "UINT16": c.UintContents.Add(BinaryPrimitives.ReadUInt16LittleEndian(e)); break;
                case "UINT32": c.UintContents.Add(BinaryPrimitives.ReadUInt32LittleEndian(e)); break;
                case "UINT64": c.Uint64Contents.Add(BinaryPrimitives.ReadUInt64LittleEndian(e)); break;
                case "INT8": c.IntContents.Add((sbyte)e[0]); break;
                case "INT16": c.IntContents.Add(BinaryPrimitives.ReadInt16LittleEndian(e)); break;
                case "INT32": c.IntContents.Add(BinaryPrimitives.ReadInt32LittleEndian(e)); break;
                case "INT64": c.Int64Contents.Add(BinaryPrimitives.ReadInt64LittleEndian(e)); break;
                case "FP32": c.Fp32Contents.Add(BinaryPrimitives.ReadSingleLittleEndian(e)); break;
                default: c.Fp64Contents.Add(BinaryPrimitives.ReadDoubleLittleEndian(e)); break;
            }
        }

        return c;
    }
}
