using EffServe.Core.Tensors;

namespace EffServe.Core.Tests.Tensors;

public sealed class ShapesTests
{
    [Theory]
    [InlineData(new long[] { -1, 1, 8, 8 }, new long[] { 5, 1, 8, 8 })]
    [InlineData(new long[] { -1, 1, 8, 8 }, new long[] { 0, 1, 8, 8 })]
    [InlineData(new long[] { -1, -1 }, new long[] { 3, 7 })]
    [InlineData(new long[] { 2, 3 }, new long[] { 2, 3 })]
    [InlineData(new long[0], new long[0])]
    public void Accepts_MatchingShape_ReturnsTrue(long[] declared, long[] actual)
    {
        Assert.True(Shapes.Accepts(declared, actual));
    }

    [Theory]
    [InlineData(new long[] { -1, 1, 8, 8 }, new long[] { 5, 1, 8 })]
    [InlineData(new long[] { -1, 1, 8, 8 }, new long[] { 5, 1, 8, 8, 1 })]
    [InlineData(new long[] { -1, 1, 8, 8 }, new long[] { 5, 1, 8, 9 })]
    [InlineData(new long[] { 2, 3 }, new long[] { 3, 2 })]
    [InlineData(new long[] { -1, 10 }, new long[] { -1, 10 })]
    [InlineData(new long[] { -1 }, new long[] { -5 })]
    [InlineData(new long[0], new long[] { 1 })]
    public void Accepts_MismatchedOrNegativeShape_ReturnsFalse(long[] declared, long[] actual)
    {
        Assert.False(Shapes.Accepts(declared, actual));
    }

    [Theory]
    [InlineData(new long[0], 1)]
    [InlineData(new long[] { 7 }, 7)]
    [InlineData(new long[] { 540, 1, 8, 8 }, 34560)]
    [InlineData(new long[] { 3, 0, 5 }, 0)]
    [InlineData(new long[] { 1L << 31, 1L << 31 }, 1L << 62)]
    public void ElementCount_ConcreteShape_IsProductOfDims(long[] shape, long expected)
    {
        Assert.Equal(expected, Shapes.ElementCount(shape));
    }

    [Theory]
    [InlineData(new long[] { 1L << 32, 1L << 32 })]
    [InlineData(new long[] { long.MaxValue, 2 })]
    [InlineData(new long[] { 3037000500, 3037000500 })]
    public void ElementCount_ProductOverflows_ThrowsOverflowException(long[] shape)
    {
        Assert.Throws<OverflowException>(() => Shapes.ElementCount(shape));
    }

    [Theory]
    [InlineData(new long[] { -1 })]
    [InlineData(new long[] { 4, -1, 2 })]
    [InlineData(new long[] { 0, -3 })]
    public void ElementCount_NegativeDimension_ThrowsArgumentOutOfRange(long[] shape)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Shapes.ElementCount(shape));
    }

    [Fact]
    public void Format_Shape_IsBracketedAndCommaSeparated()
    {
        Assert.Equal("[-1, 1, 8, 8]", Shapes.Format([-1, 1, 8, 8]));
        Assert.Equal("[]", Shapes.Format([]));
    }

    [Fact]
    public void TensorSpecToString_NamesTypeAndShape()
    {
        var spec = new TensorSpec("image", DataType.Fp32, [-1, 1, 8, 8]);

        Assert.Equal("image (FP32 [-1, 1, 8, 8])", spec.ToString());
    }
}
