using EffServe.Core.Accounting;

namespace EffServe.Core.Tests.Accounting;

public sealed class WorkSharesTests
{
    [Theory]
    [InlineData(1000L, new long[] { 1, 1, 1 })]
    [InlineData(1L, new long[] { 1, 1, 1 })]
    [InlineData(0L, new long[] { 5, 2 })]
    [InlineData(999_999_937L, new long[] { 3, 7, 11, 13, 64, 1 })]
    [InlineData(long.MaxValue / 2, new long[] { long.MaxValue / 4, 3, long.MaxValue / 8 })]
    public void Split_AnyWeights_AddsUpToTheTotalExactly(long total, long[] weights)
    {
        var shares = WorkShares.Split(total, weights);

        Assert.Equal(total, shares.Sum());
        Assert.All(shares, s => Assert.True(s >= 0));
    }

    [Fact]
    public void Split_ProportionalWeights_GivesExactShares()
    {
        Assert.Equal([100, 300, 600], WorkShares.Split(1000, [1, 3, 6]));
    }

    [Fact]
    public void Split_Leftover_GoesToLargestRemaindersThenLowerIndex()
    {
        // 10 × 1/3 = 3.33 each: one unit is left and goes to the first of the equal remainders.
        Assert.Equal([4, 3, 3], WorkShares.Split(10, [1, 1, 1]));
        // 10 × (1, 2) / 3 = 3.33, 6.67: the larger remainder (the second part) takes the unit.
        Assert.Equal([3, 7], WorkShares.Split(10, [1, 2]));
    }

    [Fact]
    public void Split_AllWeightsZero_SplitsEvenly()
    {
        Assert.Equal([5, 5], WorkShares.Split(10, [0, 0]));
    }

    [Fact]
    public void Split_ZeroWeightAmongOthers_GetsNothing()
    {
        Assert.Equal([0, 10], WorkShares.Split(10, [0, 4]));
    }

    [Fact]
    public void Split_NegativeWeightOrTotal_Throws()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => WorkShares.Split(10, [1, -1]));
        Assert.Throws<ArgumentOutOfRangeException>(() => WorkShares.Split(-1, [1]));
        Assert.Throws<ArgumentOutOfRangeException>(() => WorkShares.Split(1, []));
    }
}
