using EffServe.Core.Selection;
using EffServe.Core.Zoo;

namespace EffServe.Core.Tests.Selection;

public sealed class LatencyModelTests
{
    private static readonly VariantProfile s_profile = new(null, null, 0.97,
        [new LatencyPoint(1, 0.3, 0.5, 3000), new LatencyPoint(2, 0.6, 1.0, 3000), new LatencyPoint(8, 2.4, 4.0, 3400)],
        []);

    private static readonly VariantProfile s_earlyExit = new(null, null, 0.97,
        [new LatencyPoint(1, 0.1, 0.2, 6000)],
        [new ThresholdPoint(0, 0.7, 1, 0.05), new ThresholdPoint(0.9, 0.97, 1.9, 0.2), new ThresholdPoint(1, 0.97, 3, 0.4)]);

    [Fact]
    public void PredictMs_FromProfile_IsTheP95InterpolatedAndPerSampleBeyond()
    {
        var model = new LatencyModel(s_profile);

        Assert.Equal(0.5, model.PredictMs(1));
        Assert.Equal(2.5, model.PredictMs(5)!.Value, 6);
        Assert.Equal(8.0, model.PredictMs(16)!.Value, 6);
    }

    [Fact]
    public void PredictMs_NoProfileNoRuns_IsUnknown()
    {
        Assert.Null(new LatencyModel(null).PredictMs(1));
    }

    [Fact]
    public void Observe_EnoughRuns_ReplaceTheProfileWithTheirHighQuantile()
    {
        var model = new LatencyModel(s_profile);
        for (var i = 1; i <= 10; i++)
        {
            model.Observe(1, i); // 1..10 ms: the 90th percentile is 9
        }

        Assert.Equal(9, model.PredictMs(1));
        // Batch 2 was never observed: its profile figure scaled by observed ÷ profiled at batch 1.
        Assert.Equal(1.0 * 9 / 0.5, model.PredictMs(2)!.Value, 6);
    }

    [Fact]
    public void Observe_RunsOlderThanMaxAge_NoLongerCount()
    {
        // A burst of contention taught the model 50 ms runs; once they age out, the profile is back,
        // so a variant predicted too slow for every budget (and so never run) is tried again.
        var clock = new Accounting.ManualClock();
        var model = new LatencyModel(s_profile, time: clock);
        for (var i = 0; i < 10; i++)
        {
            model.Observe(1, 50);
        }

        Assert.Equal(50, model.PredictMs(1));
        clock.Advance(LatencyModel.MaxAge / 2);
        Assert.Equal(50, model.PredictMs(1));

        clock.Advance(LatencyModel.MaxAge);

        Assert.Equal(0.5, model.PredictMs(1));
        Assert.Equal(0, Assert.Single(model.Snapshot(), e => e.BatchSize == 1).Observations);
    }

    [Fact]
    public void Observe_ManyRunsWithRepeatsAndAgeing_HighQuantileIsThatOfTheLiveWindow()
    {
        // The sorted copy kept beside the window must always hold exactly the window's runs: check
        // it against a plain recomputation over many adds, window roll-overs, repeats and expiries.
        var clock = new Accounting.ManualClock();
        var model = new LatencyModel(s_profile, time: clock);
        var random = new Random(5);
        var seen = new List<(double Ms, TimeSpan At)>();
        var now = TimeSpan.Zero;
        for (var i = 0; i < 2000; i++)
        {
            var ms = random.Next(4) == 0 ? 1.0 : Math.Round(random.NextDouble() * 10, 1);
            model.Observe(1, ms);
            seen.Add((ms, now));
            var step = TimeSpan.FromMilliseconds(random.Next(10) == 0 ? 3000 : 100 + random.Next(50)); // ≥ the expiry check interval; more than a window within MaxAge
            clock.Advance(step);
            now += step;

            var live = seen.TakeLast(LatencyModel.Window).Where(s => now - s.At <= LatencyModel.MaxAge).Select(s => s.Ms).Order().ToList();
            var predicted = model.PredictMs(1);
            if (live.Count >= LatencyModel.MinObservations)
            {
                Assert.Equal(live[(int)Math.Ceiling(0.9 * live.Count) - 1], predicted);
            }
        }
    }

    [Fact]
    public void Observe_FreshRunsAfterOldOnes_OnlyTheFreshCount()
    {
        var clock = new Accounting.ManualClock();
        var model = new LatencyModel(s_profile, time: clock);
        for (var i = 0; i < 10; i++)
        {
            model.Observe(1, 50);
        }

        clock.Advance(LatencyModel.MaxAge + TimeSpan.FromSeconds(1));
        for (var i = 0; i < 10; i++)
        {
            model.Observe(1, 0.4);
        }

        Assert.Equal(0.4, model.PredictMs(1));
    }

    [Fact]
    public void Observe_OneOutlier_BarelyMovesTheEstimate()
    {
        var model = new LatencyModel(s_profile);
        for (var i = 0; i < 30; i++)
        {
            model.Observe(1, 0.4);
        }

        model.Observe(1, 500);

        Assert.Equal(0.4, model.PredictMs(1));
    }

    [Fact]
    public void Observe_LastingChange_TakesTheWindowOver()
    {
        var model = new LatencyModel(s_profile);
        for (var i = 0; i < LatencyModel.Window; i++)
        {
            model.Observe(1, 0.4);
        }

        for (var i = 0; i < LatencyModel.Window; i++)
        {
            model.Observe(1, 2.0);
        }

        Assert.Equal(2.0, model.PredictMs(1));
    }

    [Fact]
    public void PredictMs_EarlyExitThreshold_ScalesByTheProfilesMeanLatency()
    {
        var model = new LatencyModel(s_earlyExit, profileThreshold: 0.9);

        Assert.Equal(0.2, model.PredictMs(1, 0.9)!.Value, 6);
        Assert.Equal(0.05, model.PredictMs(1, 0)!.Value, 6);
        Assert.Equal(0.4, model.PredictMs(1, 1)!.Value, 6);
    }

    [Fact]
    public void Observe_AtAnotherThreshold_IsNormalisedToTheProfilesThreshold()
    {
        var model = new LatencyModel(s_earlyExit, profileThreshold: 0.9);
        for (var i = 0; i < 10; i++)
        {
            model.Observe(1, 0.8, threshold: 1); // twice the profile's mean at 0.9
        }

        Assert.Equal(0.4, model.PredictMs(1, 0.9)!.Value, 6);
        Assert.Equal(0.8, model.PredictMs(1, 1)!.Value, 6);
    }

    [Fact]
    public void BatchingPays_FollowsTheProfilesThroughput()
    {
        var model = new LatencyModel(s_profile);

        Assert.False(model.BatchingPays(2)); // 3000/s against 3000/s
        Assert.True(model.BatchingPays(8)); // 3400/s: 13 % more
        Assert.Equal(1, model.LargestUsefulBatch(4));
        Assert.Equal(16, model.LargestUsefulBatch(16));
        Assert.Equal(16, new LatencyModel(null).LargestUsefulBatch(16));
    }

    [Fact]
    public void Snapshot_ListsProfiledAndObservedSizes()
    {
        var model = new LatencyModel(s_profile);
        for (var i = 0; i < 6; i++)
        {
            model.Observe(4, 1.5);
        }

        var snapshot = model.Snapshot();

        Assert.Equal([1, 2, 4, 8], snapshot.Select(s => s.BatchSize));
        var four = snapshot.Single(s => s.BatchSize == 4);
        Assert.Equal(2.0, four.ProfileMs!.Value, 6);
        Assert.Equal(1.5, four.ObservedMs);
        Assert.Equal(6, four.Observations);
        Assert.Equal(1.5, four.PredictedMs);
    }
}
