using EffServe.Core.Accounting;

namespace EffServe.Core.Tests.Accounting;

public sealed class AccountantTests
{
    private static readonly AccountingOptions s_noCounters = new()
    {
        RaplPath = "/nonexistent/effserve/powercap",
        NvmlLibrary = "libeffserve-no-such-nvml.so",
    };

    [Fact]
    public void Accountant_NoRaplAndNoNvml_ModelsBothDevicesWithoutError()
    {
        using var accountant = new Accountant(s_noCounters, new ManualClock(), runSlots: 2);

        Assert.Equal(EnergySource.Modelled, accountant.Cpu.Source);
        Assert.Equal(EnergySource.Modelled, accountant.Gpu.Source);
        Assert.Equal("cpu-model", accountant.Cpu.Name);
        Assert.Equal("gpu-model", accountant.Gpu.Name);
        Assert.Collection(
            accountant.Notes,
            cpu => Assert.Contains("CPU energy is modelled", cpu, StringComparison.Ordinal),
            gpu => Assert.Contains("not installed", gpu, StringComparison.Ordinal));
    }

    [Fact]
    public void NvmlCounter_LibraryMissing_IsAbsentWithAReason()
    {
        var counter = NvmlCounter.TryOpen("libeffserve-no-such-nvml.so", 0, out var reason);

        Assert.Null(counter);
        Assert.Contains("not installed", reason, StringComparison.Ordinal);
    }

    [Fact]
    public void ModelledCpuMeter_RunUsage_ChargesCpuTimesWattsPlusTheSlotsMemoryShare()
    {
        var options = new AccountingOptions
        {
            EnergySource = "model",
            Cpu = { WattsPerActiveCore = 5, MemoryWattsPerGiB = 0.5 },
        };
        using var accountant = new Accountant(options, new ManualClock(), runSlots: 2, residentBytes: () => 4L << 30);

        var window = accountant.Cpu.BeginRun();
        var energy = accountant.Cpu.EndRun(window, new RunUsage(WallNanoseconds: 10_000_000, CpuNanoseconds: 8_000_000));

        // 8 ms × 5 W = 40 mJ of CPU; 0.5 W/GiB × 4 GiB ÷ 2 slots × 10 ms = 10 mJ of memory.
        Assert.Equal(50_000_000, energy.Nanojoules);
        Assert.Equal(8_000_000, energy.DeviceNanoseconds);
        Assert.Equal(EnergySource.Modelled, energy.Source);
        Assert.Equal(50_000_000, accountant.Cpu.ChargedNanojoules);
    }

    [Fact]
    public void Price_DeviceTimeAndEnergy_GiveCostAndCarbon()
    {
        var options = new AccountingOptions
        {
            EnergySource = "model",
            Prices = { UsdPerCoreHour = 0.036, UsdPerGpuHour = 3.6 },
            Carbon = { Pue = 1.5, GridGramsPerKwh = 400 },
        };
        using var accountant = new Accountant(options, new ManualClock(), runSlots: 1);

        // One core-second at $0.036 an hour; 1 J × 1.5 × 400 g/kWh = 1/6 g... per 1000 J: 0.1667 g.
        var cpu = accountant.Price(nanojoules: 3_600_000_000_000, deviceNanoseconds: 1_000_000_000, EnergySource.Modelled, Device.Cpu);
        var gpu = accountant.Price(nanojoules: 0, deviceNanoseconds: 1_000_000_000, EnergySource.Measured, Device.Gpu);

        Assert.Equal(0.00001, cpu.CostUsd, 12);
        Assert.Equal(0.001, gpu.CostUsd, 12);
        // 3600 J = 1 Wh = 0.001 kWh × 1.5 × 400 g = 0.6 g = 600 mg.
        Assert.Equal(600, cpu.CarbonMg, 9);
        Assert.Equal(3600, cpu.EnergyMillijoules / 1000, 9);
    }

    [Fact]
    public void Split_ByExecutedStageSamples_AddsUpAndFollowsTheWork()
    {
        using var accountant = new Accountant(s_noCounters, new ManualClock(), runSlots: 1);
        var run = new RunEnergy(Nanojoules: 1_000_003, DeviceNanoseconds: 999_999, EnergySource.Modelled, Device.Cpu);

        // Three requests in one early-exit run: 4 samples that ran 1 stage, 2 that ran 3, 1 that ran 2.
        var charges = accountant.Split(run, [4, 6, 2]);

        Assert.Equal(run.Nanojoules, charges.Sum(c => c.Nanojoules));
        Assert.Equal(run.DeviceNanoseconds, charges.Sum(c => c.DeviceNanoseconds));
        Assert.Equal(accountant.ChargeWhole(run).CostUsd, charges.Sum(c => c.CostUsd), 15);
        Assert.True(charges[1].Nanojoules > charges[0].Nanojoules && charges[0].Nanojoules > charges[2].Nanojoules);
    }

    [Fact]
    public void ChargeLookup_CacheHit_IsItsLookupCpuTimeModelled()
    {
        var options = new AccountingOptions { EnergySource = "model", Cpu = { WattsPerActiveCore = 4, MemoryWattsPerGiB = 0 } };
        using var accountant = new Accountant(options, new ManualClock(), runSlots: 1);

        var charge = accountant.ChargeLookup(new RunUsage(WallNanoseconds: 30_000, CpuNanoseconds: 20_000));

        Assert.Equal(80_000, charge.Nanojoules);
        Assert.Equal(20_000, charge.DeviceNanoseconds);
        Assert.Equal(EnergySource.Modelled, charge.Source);
    }

    [Fact]
    public void Totals_MeasuredAndModelledRequests_SayMixed()
    {
        var totals = new AccountingTotals();
        Assert.Equal("", totals.Source);

        totals.Add(new RequestCharge(10, 20, EnergySource.Modelled, Device.Cpu, 0, 0));
        Assert.Equal("modelled", totals.Source);

        totals.Add(new RequestCharge(5, 7, EnergySource.Measured, Device.Gpu, 0, 0));
        Assert.Equal("mixed", totals.Source);
        Assert.Equal((2, 15, 20, 7), (totals.Requests, totals.Nanojoules, totals.CpuNanoseconds, totals.GpuNanoseconds));
    }

    [Fact]
    public void Validate_BadSettings_ListsEveryProblemWithItsPath()
    {
        var options = new AccountingOptions
        {
            EnergySource = "guess",
            GpuIndex = -1,
            CapacityUtilisation = 0,
            Cpu = { WattsPerActiveCore = -1, CounterBaselineWatts = double.NaN },
            Prices = { UsdPerGpuHour = double.PositiveInfinity },
            Carbon = { Pue = 0.9 },
        };

        var problems = options.Validate();

        Assert.Equal(7, problems.Count);
        Assert.Contains(problems, p => p.StartsWith("EffServe:Accounting:EnergySource is 'guess'", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("EffServe:Accounting:GpuIndex", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("EffServe:Accounting:CapacityUtilisation", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("EffServe:Accounting:Cpu:WattsPerActiveCore", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("EffServe:Accounting:Cpu:CounterBaselineWatts", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("EffServe:Accounting:Prices:UsdPerGpuHour", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("EffServe:Accounting:Carbon:Pue", StringComparison.Ordinal));
        Assert.Empty(new AccountingOptions().Validate());
    }
}
