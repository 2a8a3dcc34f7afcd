namespace EffServe.Core.Tensors;

/// <summary>Element types of the Open Inference Protocol.</summary>
public enum DataType
{
    Bool,
    UInt8,
    UInt16,
    UInt32,
    UInt64,
    Int8,
    Int16,
    Int32,
    Int64,
    Fp16,
    Fp32,
    Fp64,
    Bf16,
    Bytes,
}

public static class DataTypes
{
    private static readonly string[] s_names =
    [
        "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
        "FP16", "FP32", "FP64", "BF16", "BYTES",
    ];

    private static readonly int[] s_sizes = [1, 1, 2, 4, 8, 1, 2, 4, 8, 2, 4, 8, 2, 0];

    /// <summary>Every datatype name the protocol knows, for messages.</summary>
    public static IReadOnlyList<string> Names => s_names;

    /// <summary>The protocol's name of the datatype (FP32, INT64, BYTES ...).</summary>
    public static string ToWireName(this DataType type) => s_names[(int)type];

    /// <summary>Bytes per element; 0 for BYTES, whose elements vary in length.</summary>
    public static int ElementSize(this DataType type) => s_sizes[(int)type];

    public static bool IsFixedSize(this DataType type) => type != DataType.Bytes;

    /// <summary>Parses a protocol datatype name; case-sensitive, as the protocol is.</summary>
    public static bool TryParse(string? name, out DataType type)
    {
        var index = name is null ? -1 : Array.IndexOf(s_names, name);
        type = index < 0 ? default : (DataType)index;
        return index >= 0;
    }
}
