using EffServe.Core.Tensors;
using EffServe.Zoo.OnnxFormat;
using OnnxType = EffServe.Zoo.OnnxFormat.TensorProto.Types.DataType;

namespace EffServe.Zoo.Onnx;

/// <summary>ONNX element types (TensorProto.DataType numbers) and how they map to protocol datatypes.</summary>
public static class ElementTypes
{
    public const int Float = (int)OnnxType.Float;
    public const int UInt8 = (int)OnnxType.Uint8;
    public const int Int8 = (int)OnnxType.Int8;
    public const int Int32 = (int)OnnxType.Int32;
    public const int Int64 = (int)OnnxType.Int64;
    public const int Float16 = (int)OnnxType.Float16;
    public const int Double = (int)OnnxType.Double;

    /// <summary>The protocol datatype of an ONNX element type, when the protocol has one.</summary>
    public static bool TryToDataType(int elementType, out DataType dataType)
    {
        DataType? mapped = (OnnxType)elementType switch
        {
            OnnxType.Float => DataType.Fp32,
            OnnxType.Uint8 => DataType.UInt8,
            OnnxType.Int8 => DataType.Int8,
            OnnxType.Uint16 => DataType.UInt16,
            OnnxType.Int16 => DataType.Int16,
            OnnxType.Int32 => DataType.Int32,
            OnnxType.Int64 => DataType.Int64,
            OnnxType.String => DataType.Bytes,
            OnnxType.Bool => DataType.Bool,
            OnnxType.Float16 => DataType.Fp16,
            OnnxType.Double => DataType.Fp64,
            OnnxType.Uint32 => DataType.UInt32,
            OnnxType.Uint64 => DataType.UInt64,
            OnnxType.Bfloat16 => DataType.Bf16,
            _ => null,
        };
        dataType = mapped ?? default;
        return mapped is not null;
    }

    public static int FromDataType(DataType dataType) => (int)(dataType switch
    {
        DataType.Fp32 => OnnxType.Float,
        DataType.UInt8 => OnnxType.Uint8,
        DataType.Int8 => OnnxType.Int8,
        DataType.UInt16 => OnnxType.Uint16,
        DataType.Int16 => OnnxType.Int16,
        DataType.Int32 => OnnxType.Int32,
        DataType.Int64 => OnnxType.Int64,
        DataType.Bytes => OnnxType.String,
        DataType.Bool => OnnxType.Bool,
        DataType.Fp16 => OnnxType.Float16,
        DataType.Fp64 => OnnxType.Double,
        DataType.UInt32 => OnnxType.Uint32,
        DataType.UInt64 => OnnxType.Uint64,
        DataType.Bf16 => OnnxType.Bfloat16,
        _ => throw new ArgumentOutOfRangeException(nameof(dataType)),
    });

    /// <summary>The ONNX name of an element type (FLOAT, INT64 ...), for messages.</summary>
    public static string Name(int elementType) =>
        Enum.IsDefined((OnnxType)elementType) ? ((OnnxType)elementType).ToString().ToUpperInvariant() : $"type {elementType}";

    /// <summary>Bytes per element of fixed-width types; 0 for strings and sub-byte types.</summary>
    public static int Size(int elementType) => (OnnxType)elementType switch
    {
        OnnxType.Float or OnnxType.Int32 or OnnxType.Uint32 => 4,
        OnnxType.Uint8 or OnnxType.Int8 or OnnxType.Bool or OnnxType.Float8E4M3Fn or OnnxType.Float8E4M3Fnuz
            or OnnxType.Float8E5M2 or OnnxType.Float8E5M2Fnuz => 1,
        OnnxType.Uint16 or OnnxType.Int16 or OnnxType.Float16 or OnnxType.Bfloat16 => 2,
        OnnxType.Int64 or OnnxType.Double or OnnxType.Uint64 or OnnxType.Complex64 => 8,
        OnnxType.Complex128 => 16,
        _ => 0,
    };

    /// <summary>A tensor type with the given element type and dimensions; -1 becomes the symbol <paramref name="symbol"/>.</summary>
    public static TypeProto TensorType(int elementType, IReadOnlyList<long>? dims, string symbol = "batch")
    {
        var tensor = new TypeProto.Types.Tensor { ElemType = elementType };
        if (dims is not null)
        {
            tensor.Shape = new TensorShapeProto();
            foreach (var d in dims)
            {
                tensor.Shape.Dim.Add(d >= 0
                    ? new TensorShapeProto.Types.Dimension { DimValue = d }
                    : new TensorShapeProto.Types.Dimension { DimParam = symbol });
            }
        }

        return new TypeProto { TensorType = tensor };
    }
}
