using EffServe.Core.Accounting;

namespace EffServe.Core.Tests.Accounting;

public sealed class EnergyLedgerTests
{
    [Fact]
    public void Ledger_OverlappingRuns_SplitsEachPieceEvenlyAmongTheRunsInProgress()
    {
        var clock = new ManualClock();
        var counter = new FakeCounter();
        var ledger = new EnergyLedger(counter, baselineWatts: 0, clock);

        // A runs alone for 1 ms (10 mJ), then with B for 2 ms (30 mJ), then B alone for 1 ms (5 mJ).
        var a = ledger.Begin();
        clock.Advance(TimeSpan.FromMilliseconds(1));
        counter.Nanojoules += 10_000_000;
        var b = ledger.Begin();
        clock.Advance(TimeSpan.FromMilliseconds(2));
        counter.Nanojoules += 30_000_000;
        ledger.End(a);
        clock.Advance(TimeSpan.FromMilliseconds(1));
        counter.Nanojoules += 5_000_000;
        ledger.End(b);

        Assert.Equal(25_000_000, a.Nanojoules);
        Assert.Equal(20_000_000, b.Nanojoules);
        Assert.Equal(2_000_000, a.DeviceNanoseconds);
        Assert.Equal(2_000_000, b.DeviceNanoseconds);
        Assert.Equal(45_000_000, ledger.BusyNanojoules);
    }

    [Fact]
    public void Ledger_IdleWindows_AreNeverChargedAndTeachTheBaseline()
    {
        var clock = new ManualClock();
        var counter = new FakeCounter();
        var ledger = new EnergyLedger(counter, baselineWatts: null, clock);

        // 1 s idle at 20 W, then a 10 ms run during which the counter gains 0.5 J (20 W idle + 30 W busy).
        clock.Advance(TimeSpan.FromSeconds(1));
        counter.Nanojoules += 20_000_000_000;
        var run = ledger.Begin();
        clock.Advance(TimeSpan.FromMilliseconds(10));
        counter.Nanojoules += 500_000_000;
        ledger.End(run);

        Assert.Equal(20, ledger.IdleWatts, 6);
        Assert.Equal(300_000_000, run.Nanojoules);
        Assert.Equal(20_000_000_000 + 200_000_000, ledger.IdleNanojoules);
        Assert.Equal(ledger.BusyNanojoules, run.Nanojoules);
    }

    [Fact]
    public void Ledger_ConfiguredBaselineAboveTheCounter_ChargesNothingRatherThanNegative()
    {
        var clock = new ManualClock();
        var counter = new FakeCounter();
        var ledger = new EnergyLedger(counter, baselineWatts: 100, clock);

        var run = ledger.Begin();
        clock.Advance(TimeSpan.FromMilliseconds(10));
        counter.Nanojoules += 100_000; // far below 100 W × 10 ms
        ledger.End(run);

        Assert.Equal(0, run.Nanojoules);
        Assert.Equal(10_000_000, run.DeviceNanoseconds);
    }

    [Fact]
    public void Ledger_ModelledBusyPower_ChargesWattsTimesBusyTimeOnly()
    {
        var clock = new ManualClock();
        var ledger = new EnergyLedger(busyWatts: 300, clock);

        clock.Advance(TimeSpan.FromSeconds(5)); // idle: nothing
        var a = ledger.Begin();
        var b = ledger.Begin();
        clock.Advance(TimeSpan.FromMilliseconds(4));
        ledger.End(a);
        ledger.End(b);

        // 300 W × 4 ms = 1.2 J, shared by the two runs in progress.
        Assert.Equal(600_000_000, a.Nanojoules);
        Assert.Equal(600_000_000, b.Nanojoules);
        Assert.Equal(1_200_000_000, ledger.BusyNanojoules);
        Assert.Equal(0, ledger.IdleNanojoules);
    }

    /// <summary>
    /// The conservation property: over a run of mixed batches (sizes, early-exit stages, overlap),
    /// what the requests are charged adds up to the counter over the busy windows (less the
    /// baseline), to the nanojoule.
    /// </summary>
    [Fact]
    public void Ledger_MixedBatchesSplitByWork_RequestsAddUpToTheBusyWindows()
    {
        var clock = new ManualClock();
        var counter = new FakeCounter();
        using var meter = new LedgerMeter(counter, baselineWatts: 5, clock);
        var accountant = new Accountant(new AccountingOptions { EnergySource = "model" }, clock, runSlots: 2);
        var random = new Random(7);
        long requests = 0;
        long busyStart = counter.Nanojoules;
        var open = new List<(RunWindow Window, long[] Work)>();
        for (var step = 0; step < 400; step++)
        {
            clock.AdvanceNanoseconds(random.Next(10_000, 2_000_000));
            counter.Nanojoules += random.Next(0, 80_000_000);
            if (open.Count < 2 && random.Next(2) == 0)
            {
                // A batch of 1–8 requests; each request 1–16 samples that ran 1–3 stages.
                var work = Enumerable.Range(0, random.Next(1, 9)).Select(_ => (long)Enumerable.Range(0, random.Next(1, 17)).Sum(_ => random.Next(1, 4))).ToArray();
                open.Add((meter.BeginRun(), work));
            }
            else if (open.Count > 0)
            {
                var (window, work) = open[0];
                open.RemoveAt(0);
                var energy = meter.EndRun(window, new RunUsage(0, 0));
                var charges = accountant.Split(energy, work);
                Assert.Equal(energy.Nanojoules, charges.Sum(c => c.Nanojoules));
                Assert.Equal(energy.DeviceNanoseconds, charges.Sum(c => c.DeviceNanoseconds));
                requests += charges.Sum(c => c.Nanojoules);
            }
        }

        foreach (var (window, work) in open)
        {
            requests += accountant.Split(meter.EndRun(window, new RunUsage(0, 0)), work).Sum(c => c.Nanojoules);
        }

        var ledger = meter.Ledger;
        Assert.Equal(ledger.BusyNanojoules, requests);
        Assert.Equal(meter.ChargedNanojoules, requests);
        Assert.Equal(counter.Nanojoules - busyStart, ledger.BusyNanojoules + ledger.IdleNanojoules);
    }
}
