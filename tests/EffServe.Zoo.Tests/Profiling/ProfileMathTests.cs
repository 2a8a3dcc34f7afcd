using EffServe.Core.Tensors;
using EffServe.Zoo.Profiling;

namespace EffServe.Zoo.Tests.Profiling;

public sealed class ProfileMathTests
{
    [Theory]
    [InlineData(new[] { 3.0, 1, 2 }, 2.0)]
    [InlineData(new[] { 4.0, 1, 3, 2 }, 2.5)]
    [InlineData(new[] { 7.0 }, 7.0)]
    public void Median_OddAndEvenCounts_IsTheMiddle(double[] values, double expected)
    {
        Assert.Equal(expected, LatencyStatistics.Median(values));
    }

    [Fact]
    public void Percentile_NearestRank_PicksTheValueAtTheRank()
    {
        var values = Enumerable.Range(1, 100).Select(i => (double)i).Reverse().ToArray();

        Assert.Equal(95, LatencyStatistics.Percentile(values, 95));
        Assert.Equal(100, LatencyStatistics.Percentile(values, 100));
        Assert.Equal(5, LatencyStatistics.Percentile([5.0], 95));
        Assert.Equal(2, LatencyStatistics.Percentile([1.0, 2], 95));
    }

    [Fact]
    public void Percentile95_NeverBelowTheMedian()
    {
        var random = new Random(3);
        for (var n = 1; n < 60; n++)
        {
            var values = Enumerable.Range(0, n).Select(_ => random.NextDouble()).ToArray();
            Assert.True(LatencyStatistics.Percentile(values, 95) >= LatencyStatistics.Median(values));
        }
    }

    [Fact]
    public void Warmup_SettlesWhenThreeWindowsAgreeWithinTheTolerance()
    {
        // One run per window: the first run sets the window length, then each value is a window.
        var times = new Queue<double>([10, 50, 30, 10, 10.5, 10.2, 99]);
        var settings = new MeasurementSettings { WarmupWindow = TimeSpan.FromMilliseconds(10), MinWindowRuns = 1, MaxWarmupWindows = 10 };

        var outcome = Warmup.Run(times.Dequeue, settings, TestContext.Current.CancellationToken);

        Assert.Equal(new WarmupOutcome(5, 1, Steady: true), outcome);
        Assert.Equal([99.0], times);
    }

    [Fact]
    public void Warmup_NeverAgreeing_StopsAtTheMostWindowsAndSaysUnsteady()
    {
        var calls = 0;
        var settings = new MeasurementSettings { WarmupWindow = TimeSpan.FromMilliseconds(1), MinWindowRuns = 1, MaxWarmupWindows = 6 };

        var outcome = Warmup.Run(() => ++calls % 2 == 0 ? 1.0 : 2.0, settings, TestContext.Current.CancellationToken);

        Assert.False(outcome.Steady);
        Assert.Equal(6, outcome.Windows);
    }

    [Fact]
    public void Warmup_WindowLength_FollowsTheFirstRun()
    {
        var settings = new MeasurementSettings { WarmupWindow = TimeSpan.FromMilliseconds(25), MinWindowRuns = 3 };

        var outcome = Warmup.Run(() => 0.5, settings, TestContext.Current.CancellationToken);

        Assert.Equal(new WarmupOutcome(3, 50, Steady: true), outcome);
    }

    [Theory]
    [InlineData(new[] { 1.0, 1.1, 1.05 }, true)]
    [InlineData(new[] { 1.0, 1.11, 1.05 }, false)]
    [InlineData(new[] { 0.0, 0, 0 }, true)]
    public void Agree_ComparesLargestWithSmallest(double[] medians, bool expected)
    {
        Assert.Equal(expected, Warmup.Agree(medians, 0.10));
    }

    [Theory]
    [InlineData(0.0123456, 0.01235)]
    [InlineData(123456, 123500)]
    [InlineData(0.99996, 1)]
    [InlineData(8.3125, 8.313)]
    [InlineData(0, 0)]
    public void RoundSignificant_KeepsFourDigits(double value, double expected)
    {
        Assert.Equal(expected, ProfileNumbers.RoundSignificant(value, 4), 12);
    }

    [Theory]
    [InlineData(0.00001, "0.00001")]
    [InlineData(123500, "123500")]
    [InlineData(1.0, "1")]
    [InlineData(0.985185, "0.985185")]
    [InlineData(-0.5, "-0.5")]
    public void Format_IsInvariantWithoutExponent(double value, string expected)
    {
        Assert.Equal(expected, ProfileNumbers.Format(value));
    }

    [Fact]
    public void Spread_TakesAllOrAnEvenSpread()
    {
        Assert.Equal(Enumerable.Range(0, 10), VariantMeasurement.Spread(10, 0));
        Assert.Equal(Enumerable.Range(0, 10), VariantMeasurement.Spread(10, 20));
        Assert.Equal([0, 2, 5, 7], VariantMeasurement.Spread(10, 4));
    }

    [Fact]
    public void ArgMax_RowsOfScores_TiesGoLowest()
    {
        float[] scores = [1, 3, 3, 0, 0, -1, 2, 5];
        var bytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(scores.AsSpan()).ToArray();
        var classes = new int[2];

        Scoring.ArgMax(NamedTensor.FromBytes("logits", DataType.Fp32, [2, 4], bytes), 2, classes);

        Assert.Equal([1, 3], classes);
    }

    [Fact]
    public void ArgMax_RowsThatDoNotDivideTheOutput_AreRejected()
    {
        var output = NamedTensor.FromBytes("logits", DataType.Fp32, [1, 3], new byte[12]);

        Assert.Throws<ArgumentException>(() => Scoring.ArgMax(output, 2, new int[2]));
    }

    [Fact]
    public void ArgMax_NonFp32Output_IsRejected()
    {
        var output = NamedTensor.FromBytes("ids", DataType.Fp16, [1, 2], new byte[4]);

        Assert.Throws<ArgumentException>(() => Scoring.ArgMax(output, 1, new int[1]));
    }
}
