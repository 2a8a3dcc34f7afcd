using EffServe.Core.Selection;
using EffServe.Core.Tests.Accounting;

namespace EffServe.Core.Tests.Selection;

public sealed class CalibrationTests
{
    [Fact]
    public void ExcessMs_TooFewRequests_Zero()
    {
        var calibration = new PredictionCalibration(new ManualClock());
        for (var i = 0; i < PredictionCalibration.MinObservations - 1; i++)
        {
            calibration.Observe(1, 10);
        }

        Assert.Equal(0, calibration.ExcessMs);
    }

    [Fact]
    public void ExcessMs_RequestsTookLonger_HighQuantileOfTheExcess()
    {
        var calibration = new PredictionCalibration(new ManualClock());
        for (var i = 1; i <= 20; i++)
        {
            calibration.Observe(0.5, 0.5 + i); // 1..20 ms over: the 90th percentile is 18
        }

        Assert.Equal(18, calibration.ExcessMs, 9);
    }

    [Fact]
    public void ExcessMs_FasterThanPredicted_ZeroNotNegative()
    {
        var calibration = new PredictionCalibration(new ManualClock());
        for (var i = 0; i < 20; i++)
        {
            calibration.Observe(2, 1);
        }

        Assert.Equal(0, calibration.ExcessMs);
    }

    [Fact]
    public void ExcessMs_WithinRefreshInterval_KeepsTheLastFigure()
    {
        var clock = new ManualClock();
        var calibration = new PredictionCalibration(clock);
        for (var i = 0; i < 20; i++)
        {
            calibration.Observe(1, 3);
        }

        Assert.Equal(2, calibration.ExcessMs, 9);
        for (var i = 0; i < 200; i++)
        {
            calibration.Observe(1, 11);
        }

        Assert.Equal(2, calibration.ExcessMs, 9);
        clock.Advance(PredictionCalibration.RefreshEvery);

        Assert.Equal(10, calibration.ExcessMs, 9);
    }

    [Fact]
    public void ExcessMs_OldRequestsAgeOut_BackToZero()
    {
        var clock = new ManualClock();
        var calibration = new PredictionCalibration(clock);
        for (var i = 0; i < 20; i++)
        {
            calibration.Observe(1, 31);
        }

        Assert.Equal(30, calibration.ExcessMs, 9);
        clock.Advance(PredictionCalibration.MaxAge + TimeSpan.FromMilliseconds(1));

        Assert.Equal(0, calibration.ExcessMs);
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
