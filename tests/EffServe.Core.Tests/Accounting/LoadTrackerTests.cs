using EffServe.Core.Accounting;

namespace EffServe.Core.Tests.Accounting;

public sealed class LoadTrackerTests
{
    [Fact]
    public void OfferedPerSecond_ArrivalsOverCompleteSeconds_AveragesOverTheWindow()
    {
        var clock = new ManualClock();
        var load = new LoadTracker(clock, windowSeconds: 10);
        for (var second = 0; second < 10; second++)
        {
            for (var i = 0; i < 50; i++)
            {
                load.RecordArrival();
            }

            clock.Advance(TimeSpan.FromSeconds(1));
        }

        Assert.Equal(50, load.OfferedPerSecond(), 9);

        // The current second is not counted until it is complete; old seconds leave the window.
        load.RecordArrival();
        Assert.Equal(50, load.OfferedPerSecond(), 9);
        clock.Advance(TimeSpan.FromSeconds(5));
        Assert.Equal((250 + 1) / 10.0, load.OfferedPerSecond(), 9);
        clock.Advance(TimeSpan.FromSeconds(60));
        Assert.Equal(0, load.OfferedPerSecond());
    }

    [Fact]
    public void CapacityPerSecond_SmoothedComputeTime_IsSlotsTimesUtilisationOverIt()
    {
        var load = new LoadTracker(new ManualClock(), smoothing: 0.5);
        Assert.Equal(0, load.CapacityPerSecond(slots: 2, utilisation: 0.8));

        load.RecordCompute(0.010);
        Assert.Equal(160, load.CapacityPerSecond(slots: 2, utilisation: 0.8), 9);

        load.RecordCompute(0.030); // average moves halfway: 20 ms
        Assert.Equal(0.020, load.ComputeSecondsPerRequest, 12);
        Assert.Equal(80, load.CapacityPerSecond(slots: 2, utilisation: 0.8), 9);

        load.RecordCompute(double.NaN);
        Assert.Equal(0.020, load.ComputeSecondsPerRequest, 12);
    }
}
