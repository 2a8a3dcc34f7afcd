using EffServe.Core.Selection;
using EffServe.Core.Tests.Accounting;

namespace EffServe.Core.Tests.Selection;

public sealed class CalibrationTests
{
    [Fact]
    public void Factor_TooFewRequests_Neutral()
    {
        var calibration = new PredictionCalibration(new ManualClock());
        for (var i = 0; i < PredictionCalibration.MinObservations - 1; i++)
        {
            calibration.Observe(1, 10);
        }

        Assert.Equal(PredictionCalibration.Neutral, calibration.Factor);
    }

    [Fact]
    public void Factor_RequestsTookLonger_HighQuantileOfTheRatios()
    {
        var calibration = new PredictionCalibration(new ManualClock());
        for (var i = 1; i <= 20; i++)
        {
            calibration.Observe(2, 2 * i); // ratios 1..20: the 90th percentile is 18
        }

        Assert.Equal(18, calibration.Factor);
    }

    [Fact]
    public void Factor_Bounded()
    {
        var fast = new PredictionCalibration(new ManualClock());
        var slow = new PredictionCalibration(new ManualClock());
        for (var i = 0; i < 20; i++)
        {
            fast.Observe(10, 0.1);
            slow.Observe(1, 10_000);
        }

        Assert.Equal(PredictionCalibration.MinFactor, fast.Factor);
        Assert.Equal(PredictionCalibration.MaxFactor, slow.Factor);
    }

    [Fact]
    public void Factor_OldRatiosAgeOut_BackToNeutral()
    {
        var clock = new ManualClock();
        var calibration = new PredictionCalibration(clock);
        for (var i = 0; i < 20; i++)
        {
            calibration.Observe(1, 30);
        }

        Assert.Equal(30, calibration.Factor);
        clock.Advance(PredictionCalibration.MaxAge + TimeSpan.FromMilliseconds(1));

        Assert.Equal(PredictionCalibration.Neutral, calibration.Factor);
    }

    [Theory]
    [InlineData(0.0, 1.0)]
    [InlineData(0.5, 2.0)]
    [InlineData(0.9, 10.0)]
    [InlineData(1.0, 20.0)]
    [InlineData(-0.1, 1.0)]
    [InlineData(double.NaN, 1.0)]
    public void Slowdown_ProcessorSharing(double utilisation, double expected)
    {
        Assert.Equal(expected, CpuPressure.Slowdown(utilisation), 9);
    }

    [Fact]
    public void TryParseProcStat_FirstLine_IdleAndIowaitAreNotBusy()
    {
        Assert.True(CpuPressure.TryParseProcStat("cpu  100 5 50 800 40 3 2 0 0 0", out var busy, out var total));

        Assert.Equal(1000, total);
        Assert.Equal(160, busy);
    }

    [Theory]
    [InlineData("")]
    [InlineData("cpu0 1 2 3 4 5")]
    [InlineData("cpu  1 2 x 4 5")]
    [InlineData("cpu  1 2")]
    public void TryParseProcStat_NotTheCpuLine_False(string line)
    {
        Assert.False(CpuPressure.TryParseProcStat(line, out _, out _));
    }
}
