using System.Collections.Concurrent;

namespace EffServe.Core.Accounting;

/// <summary>A request's part of a run: whole nanojoules and nanoseconds, priced.</summary>
public readonly record struct RequestCharge(long Nanojoules, long DeviceNanoseconds, EnergySource Source, Device Device, double CostUsd, double CarbonMg)
{
    public double EnergyMillijoules => Nanojoules / 1e6;

    public double DeviceSeconds => DeviceNanoseconds / 1e9;
}

/// <summary>
/// Energy, cost and carbon for this process: one meter per kind of device (a hardware counter where
/// this machine has one, the model elsewhere), the split of a run among its requests by their share
/// of the work, the prices and carbon factors, and running totals per model.
/// </summary>
public sealed class Accountant : IDisposable
{
    private readonly AccountingOptions _options;
    private readonly ConcurrentDictionary<string, AccountingTotals> _totals = new(StringComparer.Ordinal);
    private readonly ModelledCpuMeter _cpuModel;
    private readonly ITimer? _poll;

    /// <param name="options">Validated settings.</param>
    /// <param name="time">Clock for the ledgers.</param>
    /// <param name="runSlots">Runs allowed at once: memory power is shared among them.</param>
    /// <param name="residentBytes">The process's resident memory; defaults to its working set.</param>
    public Accountant(AccountingOptions options, TimeProvider time, int runSlots, Func<long>? residentBytes = null)
    {
        _options = options;
        _cpuModel = new ModelledCpuMeter(options.Cpu, runSlots, residentBytes ?? (() => Environment.WorkingSet), time);
        var notes = new List<string>();
        var counters = options.EnergySource == "auto";

        RaplCounter? rapl = null;
        var raplReason = "EffServe:Accounting:EnergySource is 'model'";
        if (counters)
        {
            rapl = RaplCounter.TryOpen(options.RaplPath, out raplReason);
        }

        Cpu = rapl is null ? _cpuModel : new LedgerMeter(rapl, options.Cpu.CounterBaselineWatts, time);
        notes.Add(rapl is null
            ? $"CPU energy is modelled (CPU time × {options.Cpu.WattsPerActiveCore} W per active core + {options.Cpu.MemoryWattsPerGiB} W per GiB of memory): {raplReason}"
            : $"CPU energy is measured by RAPL: {rapl.Description}");

        NvmlCounter? nvml = null;
        var nvmlReason = "EffServe:Accounting:EnergySource is 'model'";
        if (counters)
        {
            nvml = NvmlCounter.TryOpen(options.NvmlLibrary, options.GpuIndex, out nvmlReason);
        }

        Gpu = nvml is null
            ? new LedgerMeter(options.Gpu.ActiveWatts, options.Gpu.IdleWatts, time)
            : new LedgerMeter(nvml, options.Gpu.CounterBaselineWatts, time);
        notes.Add(nvml is null
            ? $"GPU energy (for GPU variants) is modelled ({options.Gpu.ActiveWatts} W while busy): {nvmlReason}"
            : $"GPU energy is measured by NVML: {nvml.Description}");
        Notes = notes;

        // A RAPL register wraps after a few minutes at full power: read the counters at least every
        // ten seconds even when no run does.
        if (rapl is not null || nvml is not null)
        {
            _poll = time.CreateTimer(static state => ((Accountant)state!).Poll(), this, TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(10));
        }
    }

    /// <summary>The meter CPU variants are charged by.</summary>
    public EnergyMeter Cpu { get; }

    /// <summary>The meter GPU variants are charged by.</summary>
    public EnergyMeter Gpu { get; }

    /// <summary>One line per device saying where its energy figures come from and why.</summary>
    public IReadOnlyList<string> Notes { get; }

    public IEnumerable<EnergyMeter> Meters => [Cpu, Gpu];

    public EnergyMeter MeterFor(Device device) => device == Device.Gpu ? Gpu : Cpu;

    /// <summary>
    /// Splits a run among its requests by their work (executed stage-samples for early exit,
    /// samples otherwise): energy and device time add up to the run's exactly.
    /// </summary>
    public RequestCharge[] Split(RunEnergy run, ReadOnlySpan<long> work)
    {
        var energy = WorkShares.Split(run.Nanojoules, work);
        var time = WorkShares.Split(run.DeviceNanoseconds, work);
        var charges = new RequestCharge[work.Length];
        for (var i = 0; i < charges.Length; i++)
        {
            charges[i] = Price(energy[i], time[i], run.Source, run.Device);
        }

        return charges;
    }

    /// <summary>The whole of a run charged to its only request (the same as <see cref="Split"/> with one part).</summary>
    public RequestCharge ChargeWhole(RunEnergy run) => Price(run.Nanojoules, run.DeviceNanoseconds, run.Source, run.Device);

    /// <summary>What a cache hit costs: the CPU time of its lookup, modelled (no run, no device time beyond it).</summary>
    public RequestCharge ChargeLookup(RunUsage lookup) =>
        Price(_cpuModel.Nanojoules(lookup), lookup.CpuNanoseconds, EnergySource.Modelled, Device.Cpu);

    /// <summary>Prices whole units: cost from device time, carbon from energy.</summary>
    public RequestCharge Price(long nanojoules, long deviceNanoseconds, EnergySource source, Device device)
    {
        var perHour = device == Device.Gpu ? _options.Prices.UsdPerGpuHour : _options.Prices.UsdPerCoreHour;
        var cost = deviceNanoseconds / 3.6e12 * perHour;
        return new RequestCharge(nanojoules, deviceNanoseconds, source, device, cost, CarbonMg(nanojoules));
    }

    /// <summary>Milligrams CO2e of <paramref name="nanojoules"/> at the configured PUE and grid intensity.</summary>
    public double CarbonMg(long nanojoules) =>
        // J × PUE × (g / kWh) ÷ (3.6e6 J / kWh) × 1000 mg / g
        nanojoules / 1e9 * _options.Carbon.Pue * _options.Carbon.GridGramsPerKwh / 3600.0;

    /// <summary>Cost in US dollars of <paramref name="totals"/>' device time.</summary>
    public double CostUsd(AccountingTotals totals) =>
        (totals.CpuNanoseconds / 3.6e12 * _options.Prices.UsdPerCoreHour) + (totals.GpuNanoseconds / 3.6e12 * _options.Prices.UsdPerGpuHour);

    /// <summary>Running totals of one model (created on first use).</summary>
    public AccountingTotals TotalsFor(string model) => _totals.GetOrAdd(model, static _ => new AccountingTotals());

    /// <summary>Reads every hardware counter once (call every few seconds so a wrap is never missed).</summary>
    public void Poll()
    {
        foreach (var meter in Meters)
        {
            meter.Poll();
        }
    }

    public void Dispose()
    {
        _poll?.Dispose();
        Cpu.Dispose();
        Gpu.Dispose();
    }
}

/// <summary>What one model's requests were charged since the process started; lock-free.</summary>
public sealed class AccountingTotals
{
    private long _requests;
    private long _measured;
    private long _nanojoules;
    private long _cpuNanoseconds;
    private long _gpuNanoseconds;

    public long Requests => Interlocked.Read(ref _requests);

    public long Nanojoules => Interlocked.Read(ref _nanojoules);

    public long CpuNanoseconds => Interlocked.Read(ref _cpuNanoseconds);

    public long GpuNanoseconds => Interlocked.Read(ref _gpuNanoseconds);

    /// <summary><c>measured</c> or <c>modelled</c> when every request so far was one or the other, <c>mixed</c> otherwise; empty before the first.</summary>
    public string Source
    {
        get
        {
            var requests = Requests;
            var measured = Interlocked.Read(ref _measured);
            return requests == 0 ? "" : measured == requests ? AccountingLabels.Measured : measured == 0 ? AccountingLabels.Modelled : "mixed";
        }
    }

    public void Add(RequestCharge charge)
    {
        Interlocked.Add(ref _nanojoules, charge.Nanojoules);
        Interlocked.Add(ref charge.Device == Device.Gpu ? ref _gpuNanoseconds : ref _cpuNanoseconds, charge.DeviceNanoseconds);
        if (charge.Source == EnergySource.Measured)
        {
            Interlocked.Increment(ref _measured);
        }

        Interlocked.Increment(ref _requests);
    }
}
