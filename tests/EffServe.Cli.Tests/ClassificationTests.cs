using EffServe.Cli.Inference;

namespace EffServe.Cli.Tests;

public sealed class ClassificationTests
{
    [Fact]
    public void Softmax_KnownValues_MatchTheFormula()
    {
        var p = Classification.Softmax([1.0, 2.0, 3.0]);

        var sum = Math.Exp(1) + Math.Exp(2) + Math.Exp(3);
        Assert.Equal(Math.Exp(1) / sum, p[0], 12);
        Assert.Equal(Math.Exp(2) / sum, p[1], 12);
        Assert.Equal(Math.Exp(3) / sum, p[2], 12);
    }

    [Fact]
    public void Softmax_HugeLogits_DoesNotOverflow()
    {
        var p = Classification.Softmax([1000.0, 1001.0, -1000.0]);

        Assert.All(p, v => Assert.True(double.IsFinite(v)));
        Assert.Equal(1.0, p.Sum(), 12);
        Assert.Equal(1 / (1 + Math.E), p[0], 12);
    }

    [Fact]
    public void Softmax_AllNegativeInfinity_IsUniform()
    {
        var p = Classification.Softmax([double.NegativeInfinity, double.NegativeInfinity]);

        Assert.Equal([0.5, 0.5], p);
    }

    [Fact]
    public void Softmax_Empty_IsEmpty()
    {
        Assert.Empty(Classification.Softmax([]));
    }

    [Fact]
    public void TopK_OrdersByProbability()
    {
        var top = Classification.TopK([0.1, 0.6, 0.05, 0.25], 3);

        Assert.Equal([1, 3, 0], top.Select(s => s.Index));
        Assert.Equal([1, 2, 3], top.Select(s => s.Rank));
        Assert.Equal(0.6, top[0].Probability);
    }

    [Fact]
    public void TopK_Ties_LowerIndexFirst()
    {
        var top = Classification.TopK([0.2, 0.3, 0.2, 0.3], 4);

        Assert.Equal([1, 3, 0, 2], top.Select(s => s.Index));
    }

    [Fact]
    public void TopK_KAboveClassCount_ReturnsEveryClass()
    {
        var top = Classification.TopK([0.7, 0.3], 10);

        Assert.Equal([0, 1], top.Select(s => s.Index));
    }

    [Fact]
    public void TopK_NaN_RanksLast()
    {
        var top = Classification.TopK([double.NaN, 0.4, 0.6], 3);

        Assert.Equal([2, 1, 0], top.Select(s => s.Index));
    }

    [Fact]
    public void TopK_ZeroK_Throws()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Classification.TopK([1.0], 0));
    }

    [Fact]
    public void TopK_Labels_NameClassesAndFallBackToIndex()
    {
        var top = Classification.TopK([0.1, 0.2, 0.7], 3, ["cat", "dog"]);

        Assert.Equal(["2", "dog", "cat"], top.Select(s => s.Label));
    }

    [Fact]
    public void TopK_NoLabels_UsesIndex()
    {
        var top = Classification.TopK([0.9, 0.1], 1);

        Assert.Equal("0", Assert.Single(top).Label);
    }

    [Theory]
    [InlineData(0.9712, "97.12%")]
    [InlineData(0.5, "50.00%")]
    [InlineData(0.0001, "0.01%")]
    [InlineData(0.0000032, "3.2e-06")]
    [InlineData(0.999999, ">99.99%")]
    [InlineData(1.0, "100%")]
    [InlineData(0.0, "0%")]
    [InlineData(double.NaN, "NaN")]
    public void FormatProbability_NeverShowsSmallAsZeroOrAlmostAsCertain(double probability, string expected)
    {
        Assert.Equal(expected, Commands.InferCommand.FormatProbability(probability));
    }
}
