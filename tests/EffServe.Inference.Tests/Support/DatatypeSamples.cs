using System.Buffers.Binary;
using System.Text;
using EffServe.Contracts.Inference;
using Google.Protobuf;

namespace EffServe.Inference.Tests.Support;

/// <summary>
/// One protocol datatype with six sample values (a [2, 3] tensor) chosen to catch sign, width
/// and encoding mistakes, both as raw bytes and, where the protocol has one, in its typed field.
/// </summary>
/// <param name="Suffix">The fixture names the tensors <c>in_&lt;suffix&gt;</c> and <c>out_&lt;suffix&gt;</c>.</param>
/// <param name="Typed">The values in their typed contents field; null for FP16 and BF16, which travel only raw.</param>
internal sealed record DatatypeCase(string Suffix, string Datatype, int OnnxElementType, ByteString Raw, InferTensorContents? Typed)
{
    public static readonly long[] Shape = [2, 3];

    public string Input => "in_" + Suffix;

    public string Output => "out_" + Suffix;

    public override string ToString() => Datatype;
}

internal static class DatatypeSamples
{
    /// <summary>Every datatype of the <c>typed</c> fixture, in its manifest's order.</summary>
    public static IReadOnlyList<DatatypeCase> All { get; } =
    [
        Case("float", "FP32", 1, [-1.5f, 0f, 3.25e10f, float.Epsilon, -0f, 1e-3f], c => c.Fp32Contents),
        Case("double", "FP64", 11, [Math.PI, -2e300, 0d, double.Epsilon, 1d, -1d], c => c.Fp64Contents),
        new("float16", "FP16", 10, Wire.Raw<Half>([(Half)1.5f, (Half)(-2f), Half.MaxValue, Half.Epsilon, (Half)0f, (Half)(-0.25f)]), null),
        Case<int, sbyte>("int8", "INT8", 3, [sbyte.MinValue, -1, 0, 1, sbyte.MaxValue, -7], c => c.IntContents, v => v),
        Case<int, short>("int16", "INT16", 5, [short.MinValue, short.MaxValue, -1, 0, 1234, -1234], c => c.IntContents, v => v),
        Case("int32", "INT32", 6, [int.MinValue, int.MaxValue, -1, 0, 123456789, -42], c => c.IntContents),
        Case("int64", "INT64", 7, [long.MinValue, long.MaxValue, -1L, 0L, 1L << 40, -(1L << 40)], c => c.Int64Contents),
        Case<uint, byte>("uint8", "UINT8", 2, [0, byte.MaxValue, 1, 128, 7, 200], c => c.UintContents, v => v),
        Case<uint, ushort>("uint16", "UINT16", 4, [0, ushort.MaxValue, 40000, 1, 2, 32768], c => c.UintContents, v => v),
        Case("uint32", "UINT32", 12, [0u, uint.MaxValue, 3_000_000_000u, 1u, 2u, 3u], c => c.UintContents),
        Case("uint64", "UINT64", 13, [0ul, ulong.MaxValue, 1ul << 63, 1ul, 2ul, 3ul], c => c.Uint64Contents),
        Bools([true, false, true, true, false, false]),
        Strings(["", "a", "héllo wörld", "nul\0inside", new string('x', 300), "end"]),
    ];

    /// <summary>The datatypes that have a typed contents field: all but FP16 (and BF16, which <c>typed</c> lacks).</summary>
    public static IReadOnlyList<DatatypeCase> WithTypedField { get; } = All.Where(c => c.Typed is not null).ToList();

    public static TheoryData<string> TypedFieldNames => new(WithTypedField.Select(c => c.Datatype));

    public static DatatypeCase Named(string datatype) => All.Single(c => c.Datatype == datatype);

    private static DatatypeCase Case<T>(string suffix, string datatype, int onnx, T[] values, Func<InferTensorContents, Google.Protobuf.Collections.RepeatedField<T>> field)
        where T : unmanaged
    {
        var typed = new InferTensorContents();
        field(typed).AddRange(values);
        return new DatatypeCase(suffix, datatype, onnx, Wire.Raw<T>(values), typed);
    }

    /// <summary>A datatype narrower than its typed field: raw holds <typeparamref name="TNarrow"/>, the field holds <typeparamref name="TWide"/>.</summary>
    private static DatatypeCase Case<TWide, TNarrow>(string suffix, string datatype, int onnx, TNarrow[] values, Func<InferTensorContents, Google.Protobuf.Collections.RepeatedField<TWide>> field, Func<TNarrow, TWide> widen)
        where TNarrow : unmanaged
    {
        var typed = new InferTensorContents();
        field(typed).AddRange(values.Select(widen));
        return new DatatypeCase(suffix, datatype, onnx, Wire.Raw<TNarrow>(values), typed);
    }

    private static DatatypeCase Bools(bool[] values)
    {
        var typed = new InferTensorContents();
        typed.BoolContents.AddRange(values);
        return new DatatypeCase("bool", "BOOL", 9, ByteString.CopyFrom(values.Select(v => v ? (byte)1 : (byte)0).ToArray()), typed);
    }

    private static DatatypeCase Strings(string[] values)
    {
        var typed = new InferTensorContents();
        typed.BytesContents.AddRange(values.Select(ByteString.CopyFromUtf8));
        return new DatatypeCase("string", "BYTES", 8, RawStrings(values.Select(Encoding.UTF8.GetBytes)), typed);
    }

    /// <summary>Raw BYTES contents: per element a 4-byte little-endian length, then its bytes.</summary>
    public static ByteString RawStrings(IEnumerable<byte[]> elements)
    {
        using var buffer = new MemoryStream();
        Span<byte> length = stackalloc byte[4];
        foreach (var element in elements)
        {
            BinaryPrimitives.WriteInt32LittleEndian(length, element.Length);
            buffer.Write(length);
            buffer.Write(element);
        }

        return ByteString.CopyFrom(buffer.ToArray());
    }
}
