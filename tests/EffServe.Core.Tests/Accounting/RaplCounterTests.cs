using EffServe.Core.Accounting;

namespace EffServe.Core.Tests.Accounting;

/// <summary>The RAPL path against a fake powercap folder in a temporary directory.</summary>
public sealed class RaplCounterTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "effserve-rapl-" + Guid.NewGuid().ToString("N"));

    public RaplCounterTests()
    {
        Directory.CreateDirectory(_root);
    }

    [Fact]
    public void Read_PackageAndDramZones_AddsTheirEnergyDeltas()
    {
        Zone("intel-rapl:0", "package-0", energy: 1_000, range: 1_000_000);
        Zone("intel-rapl:0:0", "core", energy: 500, range: 1_000_000);
        Zone("intel-rapl:0:1", "dram", energy: 200, range: 1_000_000);
        Zone("intel-rapl:1", "package-1", energy: 7_000, range: 1_000_000);
        using var counter = RaplCounter.TryOpen(_root, out var reason);
        Assert.NotNull(counter);
        Assert.Equal("", reason);
        Assert.Equal(0, counter.ReadNanojoules());

        Energy("intel-rapl:0", 1_600);   // +600 µJ
        Energy("intel-rapl:0:0", 900);   // a core sub-zone: already inside its package, not added
        Energy("intel-rapl:0:1", 300);   // +100 µJ of DRAM
        Energy("intel-rapl:1", 7_050);   // +50 µJ

        Assert.Equal(750_000, counter.ReadNanojoules());
        Assert.Contains("dram", counter.Description, StringComparison.Ordinal);
        Assert.DoesNotContain("core", counter.Description, StringComparison.Ordinal);
    }

    [Fact]
    public void Read_CounterWrapsAtMaxEnergyRange_CountsAcrossTheWrap()
    {
        Zone("intel-rapl:0", "package-0", energy: 999_900, range: 1_000_000);
        using var counter = RaplCounter.TryOpen(_root, out _);
        Assert.NotNull(counter);

        Energy("intel-rapl:0", 999_990);
        Assert.Equal(90_000, counter.ReadNanojoules());

        Energy("intel-rapl:0", 40); // wrapped: 10 µJ up to the range, 40 after it
        Assert.Equal(140_000, counter.ReadNanojoules());

        Energy("intel-rapl:0", 1_040);
        Assert.Equal(1_140_000, counter.ReadNanojoules());
    }

    [Fact]
    public void TryOpen_NoPowercapFolder_IsAbsentWithAReason()
    {
        var counter = RaplCounter.TryOpen(Path.Combine(_root, "missing"), out var reason);

        Assert.Null(counter);
        Assert.Contains("does not exist", reason, StringComparison.Ordinal);
    }

    [Fact]
    public void TryOpen_NoRaplZone_IsAbsentWithAReason()
    {
        Directory.CreateDirectory(Path.Combine(_root, "dtpm"));

        var counter = RaplCounter.TryOpen(_root, out var reason);

        Assert.Null(counter);
        Assert.Contains("no intel-rapl zone", reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Accountant_FakeRaplFolder_MeasuresCpuEnergy()
    {
        Zone("intel-rapl:0", "package-0", energy: 0, range: 1_000_000_000);
        var clock = new ManualClock();
        using var accountant = new Accountant(new AccountingOptions { RaplPath = _root, NvmlLibrary = "libeffserve-no-such-nvml.so", Cpu = { CounterBaselineWatts = 0 } }, clock, runSlots: 1);

        var window = accountant.Cpu.BeginRun();
        clock.Advance(TimeSpan.FromMilliseconds(2));
        Energy("intel-rapl:0", 40_000); // 40 mJ in 2 ms: 20 W
        var energy = accountant.Cpu.EndRun(window, new RunUsage(2_000_000, 1_900_000));

        Assert.Equal(EnergySource.Measured, energy.Source);
        Assert.Equal(40_000_000, energy.Nanojoules);
        Assert.Equal(1_900_000, energy.DeviceNanoseconds);
        Assert.Equal("rapl", accountant.Cpu.Name);
        Assert.Contains(accountant.Notes, n => n.StartsWith("CPU energy is measured by RAPL", StringComparison.Ordinal));
    }

    public void Dispose()
    {
        Directory.Delete(_root, recursive: true);
    }

    private void Zone(string folder, string name, long energy, long range)
    {
        var path = Path.Combine(_root, folder);
        Directory.CreateDirectory(path);
        File.WriteAllText(Path.Combine(path, "name"), name + "\n");
        File.WriteAllText(Path.Combine(path, "max_energy_range_uj"), range + "\n");
        Energy(folder, energy);
    }

    private void Energy(string folder, long microjoules) =>
        File.WriteAllText(Path.Combine(_root, folder, "energy_uj"), microjoules + "\n");
}
