using EffServe.LoadGen;

namespace EffServe.LoadGen.Tests;

public sealed class LatencyHistogramTests
{
    [Fact]
    public void Percentile_SmallValues_Exact()
    {
        var histogram = new LatencyHistogram();
        for (var v = 1; v <= 100; v++)
        {
            histogram.Record(v);
        }

        Assert.Equal(50, histogram.Percentile(0.5));
        Assert.Equal(99, histogram.Percentile(0.99));
        Assert.Equal(100, histogram.Percentile(1));
        Assert.Equal(1, histogram.Percentile(0));
        Assert.Equal(50.5, histogram.MeanMicroseconds, 9);
    }

    [Fact]
    public void Percentile_LargeValues_WithinOnePercent()
    {
        var histogram = new LatencyHistogram();
        for (var v = 1; v <= 1_000_000; v += 7)
        {
            histogram.Record(v);
        }

        foreach (var q in new[] { 0.5, 0.9, 0.99, 0.999 })
        {
            var exact = q * 1_000_000;
            Assert.InRange(histogram.Percentile(q), exact * 0.99, exact * 1.01);
        }

        Assert.Equal(1_000_000, histogram.MaxMicroseconds);
        Assert.Equal(1_000_000, histogram.Percentile(1));
    }

    [Fact]
    public void Add_TwoHistograms_SameAsOne()
    {
        var a = new LatencyHistogram();
        var b = new LatencyHistogram();
        var both = new LatencyHistogram();
        for (var v = 0; v < 5000; v++)
        {
            (v % 2 == 0 ? a : b).Record(v * 13);
            both.Record(v * 13);
        }

        a.Add(b);

        Assert.Equal(both.Count, a.Count);
        Assert.Equal(both.Percentile(0.9), a.Percentile(0.9));
        Assert.Equal(both.CountAtOrBelow(20_000), a.CountAtOrBelow(20_000));
    }

    [Fact]
    public void Empty_PercentileIsNaN_NegativeCountsAsZero()
    {
        var histogram = new LatencyHistogram();
        Assert.True(double.IsNaN(histogram.Percentile(0.5)));

        histogram.Record(-40);
        Assert.Equal(0, histogram.Percentile(0.5));
        Assert.Equal(1, histogram.CountAtOrBelow(0));
    }

    [Fact]
    public void Record_HugeValue_Clamped()
    {
        var histogram = new LatencyHistogram();
        histogram.Record(long.MaxValue / 2);

        Assert.Equal(1, histogram.Count);
        Assert.Equal(long.MaxValue / 2, histogram.MaxMicroseconds);
    }
}
