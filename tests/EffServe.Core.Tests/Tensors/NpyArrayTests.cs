using System.Buffers.Binary;
using EffServe.Core.Tensors;
using EffServe.Core.Tests.Support;

namespace EffServe.Core.Tests.Tensors;

public sealed class NpyArrayTests
{
    /// <summary>Every datatype with a .npy representation (all fixed-size types but BF16).</summary>
    public static TheoryData<DataType> NpyTypes => [.. SupportedTypes()];

    public static TheoryData<DataType, long[]> NpyTypesAndShapes()
    {
        var data = new TheoryData<DataType, long[]>();
        foreach (var type in SupportedTypes())
        {
            data.Add(type, [5]);
            data.Add(type, [2, 1, 3, 2]);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(NpyTypesAndShapes))]
    public void WriteThenParse_SupportedType_RoundTrips(DataType type, long[] shape)
    {
        var original = new NpyArray(type, shape, NpyBytes.Pattern(type, shape));

        var parsed = NpyArray.Parse(NpyBytes.Save(original));

        Assert.Equal(type, parsed.DataType);
        Assert.Equal(shape, parsed.Shape);
        Assert.Equal(original.Data, parsed.Data);
    }

    [Theory]
    [MemberData(nameof(NpyTypes))]
    public void Write_SupportedType_StartsWithMagicAndAlignsDataTo64Bytes(DataType type)
    {
        long[] shape = [3, 2];
        var file = NpyBytes.Save(new NpyArray(type, shape, NpyBytes.Pattern(type, shape)));

        Assert.Equal(NpyBytes.Magic.ToArray(), file[..6]);
        Assert.Equal(1, file[6]);
        Assert.Equal(0, file[7]);
        var headerLength = BinaryPrimitives.ReadUInt16LittleEndian(file.AsSpan(8));
        Assert.Equal(0, (10 + headerLength) % 64);
        Assert.Equal((byte)'\n', file[10 + headerLength - 1]);
        Assert.Equal(file.Length - 10 - headerLength, shape[0] * shape[1] * type.ElementSize());
    }

    [Fact]
    public void WriteThenParse_ScalarAndEmptyShapes_RoundTrip()
    {
        var scalar = new NpyArray(DataType.Fp64, [], BitConverter.GetBytes(2.5));
        var empty = new NpyArray(DataType.Int32, [0, 3], []);

        var parsedScalar = NpyArray.Parse(NpyBytes.Save(scalar));
        var parsedEmpty = NpyArray.Parse(NpyBytes.Save(empty));

        Assert.Empty(parsedScalar.Shape);
        Assert.Equal(2.5, BitConverter.ToDouble(parsedScalar.Data));
        Assert.Equal([0L, 3L], parsedEmpty.Shape);
        Assert.Empty(parsedEmpty.Data);
    }

    [Fact]
    public void Parse_HandWrittenVersion1File_ReadsTypeShapeAndData()
    {
        var data = new byte[6 * 4];
        for (var i = 0; i < 6; i++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(data.AsSpan(i * 4), i + 0.5f);
        }

        var array = NpyArray.Parse(NpyBytes.Version1(NpyBytes.Header("<f4", "(2, 3)"), data));

        Assert.Equal(DataType.Fp32, array.DataType);
        Assert.Equal([2L, 3L], array.Shape);
        Assert.Equal(data, array.Data);
        Assert.Equal(12, array.RowBytes);
    }

    [Fact]
    public void Parse_Version2File_ReadsFourByteHeaderLength()
    {
        var data = NpyBytes.Pattern(DataType.Int16, [4]);

        var array = NpyArray.Parse(NpyBytes.Version2(NpyBytes.Header("<i2", "(4,)"), data));

        Assert.Equal(DataType.Int16, array.DataType);
        Assert.Equal([4L], array.Shape);
        Assert.Equal(data, array.Data);
    }

    [Theory]
    [InlineData("<i1", DataType.Int8)]
    [InlineData("|i1", DataType.Int8)]
    [InlineData("<u1", DataType.UInt8)]
    [InlineData("<b1", DataType.Bool)]
    [InlineData("=f4", DataType.Fp32)]
    [InlineData("=i8", DataType.Int64)]
    public void Parse_EquivalentDescrSpellings_AreAccepted(string descr, DataType expected)
    {
        var data = NpyBytes.Pattern(expected, [3]);

        var array = NpyArray.Parse(NpyBytes.Version1(NpyBytes.Header(descr, "(3,)"), data));

        Assert.Equal(expected, array.DataType);
    }

    [Fact]
    public void Read_DigitsEvalImages_IsFp32Of540ImagesScaledToUnitRange()
    {
        var array = NpyArray.Read(Path.Combine(RepoPaths.Digits, "eval", "images.npy"));

        Assert.Equal(DataType.Fp32, array.DataType);
        Assert.Equal([540L, 1L, 8L, 8L], array.Shape);
        Assert.Equal(64 * 4, array.RowBytes);
        var values = new float[array.Data.Length / 4];
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = BinaryPrimitives.ReadSingleLittleEndian(array.Data.AsSpan(i * 4));
        }

        Assert.All(values, v => Assert.InRange(v, 0f, 1f));
        Assert.Contains(values, v => v == 0f);
        Assert.Contains(values, v => v == 1f);
    }

    [Fact]
    public void Read_DigitsEvalLabels_IsInt64ClassIndicesCoveringEveryDigit()
    {
        var array = NpyArray.Read(Path.Combine(RepoPaths.Digits, "eval", "labels.npy"));

        Assert.Equal(DataType.Int64, array.DataType);
        Assert.Equal([540L], array.Shape);
        var labels = new long[540];
        for (var i = 0; i < labels.Length; i++)
        {
            labels[i] = BinaryPrimitives.ReadInt64LittleEndian(array.Data.AsSpan(i * 8));
        }

        Assert.All(labels, l => Assert.InRange(l, 0L, 9L));
        Assert.Equal(10, labels.Distinct().Count());
    }

    [Fact]
    public void Parse_BadMagic_ThrowsFormatExceptionNamingTheMagicString()
    {
        var file = NpyBytes.Version1(NpyBytes.Header("<f4", "(1,)"), new byte[4]);
        file[1] = (byte)'n';

        var e = Assert.Throws<FormatException>(() => NpyArray.Parse(file));

        Assert.Contains("not a .npy file", e.Message, StringComparison.Ordinal);
        Assert.Contains("magic", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_MagicOfTheUtf8EncodedCharacter_IsRejected()
    {
        // U+0093 written as UTF-8 (C2 93) is not the 0x93 byte the format requires.
        byte[] file = [0xC2, 0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', 1, 0, 0, 0, 0, 0];

        Assert.Throws<FormatException>(() => NpyArray.Parse(file));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(5)]
    [InlineData(9)]
    public void Parse_ShorterThanThePrefix_ThrowsFormatException(int length)
    {
        var file = NpyBytes.Version1(NpyBytes.Header("<f4", "(1,)"), new byte[4])[..length];

        Assert.Throws<FormatException>(() => NpyArray.Parse(file));
    }

    [Fact]
    public void Parse_TruncatedHeader_ThrowsFormatExceptionSayingTruncated()
    {
        var file = NpyBytes.Version1(NpyBytes.Header("<f4", "(1,)"), new byte[4])[..40];

        var e = Assert.Throws<FormatException>(() => NpyArray.Parse(file));

        Assert.Contains("truncated", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_TruncatedVersion2Prefix_ThrowsFormatExceptionSayingTruncated()
    {
        var file = NpyBytes.Version2(NpyBytes.Header("<f4", "(1,)"), new byte[4])[..11];

        var e = Assert.Throws<FormatException>(() => NpyArray.Parse(file));

        Assert.Contains("truncated", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(int.MaxValue)]
    [InlineData(uint.MaxValue)]
    public void Parse_Version2HeaderLengthBeyondTheFile_ThrowsFormatExceptionSayingTruncated(uint headerLength)
    {
        var file = NpyBytes.Version2(NpyBytes.Header("<f4", "(1,)"), new byte[4]);
        BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(8), headerLength);

        var e = Assert.Throws<FormatException>(() => NpyArray.Parse(file));

        Assert.Contains("truncated", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_UnsupportedVersion_ThrowsFormatExceptionNamingIt()
    {
        var file = NpyBytes.Version1(NpyBytes.Header("<f4", "(1,)"), new byte[4]);
        file[6] = 4;

        var e = Assert.Throws<FormatException>(() => NpyArray.Parse(file));

        Assert.Contains("version 4", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_FortranOrder_ThrowsFormatExceptionAskingForCOrder()
    {
        var file = NpyBytes.Version1(NpyBytes.Header("<f4", "(2, 2)", fortranOrder: true), new byte[16]);

        var e = Assert.Throws<FormatException>(() => NpyArray.Parse(file));

        Assert.Contains("Fortran", e.Message, StringComparison.Ordinal);
        Assert.Contains("C order", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(">f4")]
    [InlineData(">i8")]
    [InlineData(">u2")]
    public void Parse_BigEndian_ThrowsFormatExceptionNamingTheType(string descr)
    {
        var file = NpyBytes.Version1(NpyBytes.Header(descr, "(2,)"), new byte[2 * (descr[2] - '0')]);

        var e = Assert.Throws<FormatException>(() => NpyArray.Parse(file));

        Assert.Contains($"'{descr}'", e.Message, StringComparison.Ordinal);
        Assert.Contains("little-endian", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("<U8")]
    [InlineData("<c8")]
    [InlineData("|O")]
    [InlineData("<f16")]
    public void Parse_UnsupportedElementType_ThrowsFormatException(string descr)
    {
        var file = NpyBytes.Version1(NpyBytes.Header(descr, "(1,)"), new byte[8]);

        var e = Assert.Throws<FormatException>(() => NpyArray.Parse(file));

        Assert.Contains("not supported", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(20)]
    [InlineData(28)]
    [InlineData(0)]
    public void Parse_DataLengthMismatch_ThrowsFormatExceptionWithBothLengths(int dataLength)
    {
        var file = NpyBytes.Version1(NpyBytes.Header("<f4", "(2, 3)"), new byte[dataLength]);

        var e = Assert.Throws<FormatException>(() => NpyArray.Parse(file));

        Assert.Contains("needs 24 data bytes", e.Message, StringComparison.Ordinal);
        Assert.Contains($"the file has {dataLength}", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("{'descr': '<f4', 'shape': (1,), }")]
    [InlineData("{'fortran_order': False, 'shape': (1,), }")]
    [InlineData("{'descr': '<f4', 'fortran_order': False, }")]
    [InlineData("garbage")]
    public void Parse_HeaderMissingAKey_ThrowsFormatExceptionQuotingTheHeader(string header)
    {
        var file = NpyBytes.Version1(header, new byte[4]);

        var e = Assert.Throws<FormatException>(() => NpyArray.Parse(file));

        Assert.Contains("unreadable .npy header", e.Message, StringComparison.Ordinal);
        Assert.Contains(header, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_ShapeWhoseByteCountWrapsAround_ThrowsFormatException()
    {
        // 2^61 FP64 elements are 2^64 bytes, which wraps to 0 in 64-bit arithmetic; a file with
        // no data must not be accepted as holding them.
        var file = NpyBytes.Version1(NpyBytes.Header("<f8", "(2305843009213693952,)"), []);

        Assert.Throws<FormatException>(() => NpyArray.Parse(file));
    }

    [Theory]
    [InlineData("(9223372036854775807, 2)")]
    [InlineData("(4294967296, 4294967296)")]
    [InlineData("(99999999999999999999,)")]
    public void Parse_ShapeTooLargeToCount_ThrowsFormatException(string shape)
    {
        var file = NpyBytes.Version1(NpyBytes.Header("<f4", shape), new byte[4]);

        Assert.Throws<FormatException>(() => NpyArray.Parse(file));
    }

    [Fact]
    public void Constructor_ByteCountOverflows_Throws()
    {
        var e = Record.Exception(() => new NpyArray(DataType.Fp64, [1L << 61], []));

        Assert.True(e is ArgumentException or OverflowException, $"Expected ArgumentException or OverflowException, got {e?.GetType().Name ?? "none"}.");
    }

    [Fact]
    public void Read_InvalidFile_PrefixesTheMessageWithThePath()
    {
        var path = Path.Combine(Path.GetTempPath(), $"effserve-core-tests-{Guid.NewGuid():N}.npy");
        File.WriteAllBytes(path, [1, 2, 3]);
        try
        {
            var e = Assert.Throws<FormatException>(() => NpyArray.Read(path));

            Assert.StartsWith(path + ": ", e.Message, StringComparison.Ordinal);
            Assert.Contains("not a .npy file", e.Message, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Theory]
    [InlineData(DataType.Bf16)]
    [InlineData(DataType.Bytes)]
    public void Constructor_TypeWithoutNpyForm_ThrowsArgumentException(DataType type)
    {
        var e = Assert.Throws<ArgumentException>(() => new NpyArray(type, [2], new byte[4]));

        Assert.Equal("dataType", e.ParamName);
    }

    [Fact]
    public void Constructor_DataLengthMismatch_ThrowsArgumentException()
    {
        var e = Assert.Throws<ArgumentException>(() => new NpyArray(DataType.Fp32, [2, 3], new byte[20]));

        Assert.Equal("data", e.ParamName);
        Assert.Contains("needs 24 bytes, got 20", e.Message, StringComparison.Ordinal);
    }

    private static IEnumerable<DataType> SupportedTypes() =>
        Enum.GetValues<DataType>().Where(t => t.IsFixedSize() && t != DataType.Bf16);

    [Fact]
    public void ClassIndex_IntegerLabels_ReadsEachSample()
    {
        var labels = new NpyArray(DataType.Int8, [3], [2, 0, unchecked((byte)-1)]);

        Assert.Equal([2L, 0, -1], [labels.ClassIndex(0), labels.ClassIndex(1), labels.ClassIndex(2)]);
    }

    [Fact]
    public void ClassIndex_FloatLabels_FormatExceptionNamingTheType()
    {
        var labels = new NpyArray(DataType.Fp32, [1], BitConverter.GetBytes(1f));

        var e = Assert.Throws<FormatException>(() => labels.ClassIndex(0));
        Assert.Contains("integer class indices, not FP32", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ClassIndex_TwoValuesPerSample_FormatExceptionNamingTheShape()
    {
        var labels = new NpyArray(DataType.Int64, [1, 2], new byte[16]);

        var e = Assert.Throws<FormatException>(() => labels.ClassIndex(0));
        Assert.Contains("one class index per sample; shape is [1, 2]", e.Message, StringComparison.Ordinal);
    }
}
