using EffServe.Core.Tensors;

namespace EffServe.Core.Tests.Tensors;

public sealed class DataTypesTests
{
    public static TheoryData<DataType> AllTypes => [.. Enum.GetValues<DataType>()];

    [Theory]
    [MemberData(nameof(AllTypes))]
    public void ToWireName_ThenTryParse_RoundTrips(DataType type)
    {
        var name = type.ToWireName();

        Assert.True(DataTypes.TryParse(name, out var parsed));
        Assert.Equal(type, parsed);
    }

    [Theory]
    [InlineData(DataType.Bool, "BOOL")]
    [InlineData(DataType.UInt8, "UINT8")]
    [InlineData(DataType.UInt16, "UINT16")]
    [InlineData(DataType.UInt32, "UINT32")]
    [InlineData(DataType.UInt64, "UINT64")]
    [InlineData(DataType.Int8, "INT8")]
    [InlineData(DataType.Int16, "INT16")]
    [InlineData(DataType.Int32, "INT32")]
    [InlineData(DataType.Int64, "INT64")]
    [InlineData(DataType.Fp16, "FP16")]
    [InlineData(DataType.Fp32, "FP32")]
    [InlineData(DataType.Fp64, "FP64")]
    [InlineData(DataType.Bf16, "BF16")]
    [InlineData(DataType.Bytes, "BYTES")]
    public void ToWireName_EachType_IsTheProtocolName(DataType type, string expected)
    {
        Assert.Equal(expected, type.ToWireName());
    }

    [Fact]
    public void Names_ListsEveryTypeOnceInEnumOrder()
    {
        var expected = Enum.GetValues<DataType>().Select(t => t.ToWireName()).ToArray();

        Assert.Equal(expected, DataTypes.Names);
        Assert.Equal(expected.Length, DataTypes.Names.Distinct(StringComparer.Ordinal).Count());
    }

    [Theory]
    [InlineData(DataType.Bool, 1)]
    [InlineData(DataType.UInt8, 1)]
    [InlineData(DataType.UInt16, 2)]
    [InlineData(DataType.UInt32, 4)]
    [InlineData(DataType.UInt64, 8)]
    [InlineData(DataType.Int8, 1)]
    [InlineData(DataType.Int16, 2)]
    [InlineData(DataType.Int32, 4)]
    [InlineData(DataType.Int64, 8)]
    [InlineData(DataType.Fp16, 2)]
    [InlineData(DataType.Fp32, 4)]
    [InlineData(DataType.Fp64, 8)]
    [InlineData(DataType.Bf16, 2)]
    [InlineData(DataType.Bytes, 0)]
    public void ElementSize_EachType_IsBytesPerElement(DataType type, int expected)
    {
        Assert.Equal(expected, type.ElementSize());
    }

    [Theory]
    [MemberData(nameof(AllTypes))]
    public void IsFixedSize_EachType_FalseOnlyForBytes(DataType type)
    {
        Assert.Equal(type != DataType.Bytes, type.IsFixedSize());
    }

    [Theory]
    [InlineData("fp32")]
    [InlineData("Fp32")]
    [InlineData("int64")]
    [InlineData("bytes")]
    public void TryParse_WrongCase_ReturnsFalse(string name)
    {
        Assert.False(DataTypes.TryParse(name, out _));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData(" FP32")]
    [InlineData("FP32 ")]
    [InlineData("FLOAT32")]
    [InlineData("FP8")]
    [InlineData("STRING")]
    [InlineData("0")]
    public void TryParse_UnknownName_ReturnsFalseAndDefault(string? name)
    {
        Assert.False(DataTypes.TryParse(name, out var type));
        Assert.Equal(default, type);
    }
}
