using EffServe.LoadGen;

namespace EffServe.LoadGen.Tests;

public sealed class TraceTests
{
    private static readonly double[] s_shares = [0.3, 0.5, 0.2];

    [Fact]
    public void Generate_SameSeed_SameSchedule()
    {
        var a = Trace.Generate(7, 500, 2, s_shares, 100);
        var b = Trace.Generate(7, 500, 2, s_shares, 100);
        var c = Trace.Generate(8, 500, 2, s_shares, 100);

        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
    }

    [Fact]
    public void Generate_DoubleRate_SameRequestsTwiceAsFast()
    {
        var slow = Trace.Generate(11, 200, 5, s_shares, 1000);
        var fast = Trace.Generate(11, 400, 5, s_shares, 1000);

        Assert.True(fast.Length > slow.Length);
        for (var i = 0; i < slow.Length; i++)
        {
            Assert.Equal(slow[i].ClassIndex, fast[i].ClassIndex);
            Assert.Equal(slow[i].Sample, fast[i].Sample);
            Assert.Equal(slow[i].OffsetSeconds / 2, fast[i].OffsetSeconds, 9);
        }
    }

    [Fact]
    public void Generate_ManyRequests_RateAndSharesAsAsked()
    {
        var trace = Trace.Generate(3, 1000, 30, s_shares, 50);

        Assert.InRange(trace.Length, 29_000, 31_000);
        Assert.All(trace, r => Assert.InRange(r.OffsetSeconds, 0, 30));
        Assert.True(trace.Zip(trace.Skip(1)).All(p => p.First.OffsetSeconds <= p.Second.OffsetSeconds));
        for (var c = 0; c < s_shares.Length; c++)
        {
            Assert.InRange(trace.Count(r => r.ClassIndex == c) / (double)trace.Length, s_shares[c] - 0.02, s_shares[c] + 0.02);
        }

        Assert.Equal(50, trace.Select(r => r.Sample).Distinct().Count());

        // Poisson: exponential gaps, so the coefficient of variation of the gaps is about 1.
        var gaps = trace.Zip(trace.Skip(1)).Select(p => p.Second.OffsetSeconds - p.First.OffsetSeconds).ToArray();
        var mean = gaps.Average();
        var sd = Math.Sqrt(gaps.Sum(g => (g - mean) * (g - mean)) / gaps.Length);
        Assert.InRange(sd / mean, 0.95, 1.05);
    }

    [Theory]
    [InlineData(0, 1, "rate")]
    [InlineData(-5, 1, "rate")]
    [InlineData(double.NaN, 1, "rate")]
    [InlineData(100, 0, "duration")]
    public void Generate_BadRateOrDuration_SaysWhich(double rate, double duration, string word)
    {
        var e = Assert.Throws<LoadGenException>(() => Trace.Generate(1, rate, duration, s_shares, 10));

        Assert.Contains(word, e.Message, StringComparison.Ordinal);
    }
}
