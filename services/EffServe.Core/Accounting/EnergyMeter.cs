namespace EffServe.Core.Accounting;

/// <summary>What a run used, measured around it.</summary>
/// <param name="WallNanoseconds">Elapsed time of the run.</param>
/// <param name="CpuNanoseconds">CPU time of the run (see <see cref="CpuClockScope"/> for whose).</param>
public readonly record struct RunUsage(long WallNanoseconds, long CpuNanoseconds);

/// <summary>A run's energy and device time, before they are split among its requests.</summary>
/// <param name="Nanojoules">Energy charged to the run (idle power excluded).</param>
/// <param name="DeviceNanoseconds">Device time charged to the run: CPU time for CPUs, busy time for GPUs.</param>
/// <param name="Source">Whether the energy was measured or modelled.</param>
/// <param name="Device">The device the run used.</param>
public readonly record struct RunEnergy(long Nanojoules, long DeviceNanoseconds, EnergySource Source, Device Device);

/// <summary>A run in progress, as its meter tracks it between <see cref="EnergyMeter.BeginRun"/> and <see cref="EnergyMeter.EndRun"/>.</summary>
public sealed class RunWindow
{
    internal long Nanojoules { get; set; }

    internal long DeviceNanoseconds { get; set; }
}

/// <summary>
/// Energy of runs on one kind of device. Every run is bracketed by <see cref="BeginRun"/> and
/// <see cref="EndRun"/>; what the meter charges all runs adds up to <see cref="ChargedNanojoules"/>,
/// and idle power is reported apart (<see cref="IdleWatts"/>), never charged.
/// </summary>
public abstract class EnergyMeter : IDisposable
{
    private long _charged;
    private long _runs;

    /// <summary><c>cpu-model</c>, <c>gpu-model</c>, <c>rapl</c> or <c>nvml</c>.</summary>
    public abstract string Name { get; }

    public abstract EnergySource Source { get; }

    public abstract Device Device { get; }

    /// <summary>Energy charged to every run so far, in nanojoules: the meter's total over its busy windows.</summary>
    public long ChargedNanojoules => Interlocked.Read(ref _charged);

    /// <summary>Runs charged so far.</summary>
    public long Runs => Interlocked.Read(ref _runs);

    /// <summary>Power the device draws when no run is in progress, in watts: configured for a model, learned for a counter.</summary>
    public abstract double IdleWatts { get; }

    /// <summary>Marks the start of a run; pass the window to <see cref="EndRun"/> exactly once, even when the run fails.</summary>
    public abstract RunWindow BeginRun();

    /// <summary>Ends a run and returns what it is charged.</summary>
    public RunEnergy EndRun(RunWindow window, RunUsage usage)
    {
        var energy = Measure(window, usage);
        Interlocked.Add(ref _charged, energy.Nanojoules);
        Interlocked.Increment(ref _runs);
        return energy;
    }

    /// <summary>Reads a hardware counter so that its wrap-around is never missed; nothing for a model.</summary>
    public virtual void Poll()
    {
    }

    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    protected abstract RunEnergy Measure(RunWindow window, RunUsage usage);

    protected virtual void Dispose(bool disposing)
    {
    }
}

/// <summary>
/// The CPU model: a run's CPU time × watts per active core, plus its run slot's share of the memory
/// power while it runs (memory power = watts per GiB × the process's resident memory ÷ run slots).
/// Device time is the run's CPU time, priced per core-hour.
/// </summary>
public sealed class ModelledCpuMeter : EnergyMeter
{
    private readonly CpuPowerOptions _power;
    private readonly int _slots;
    private readonly Func<long> _residentBytes;
    private readonly TimeProvider _time;
    private readonly object _lock = new();
    private long _residentSampledAt = long.MinValue;
    private double _residentGiB;

    public ModelledCpuMeter(CpuPowerOptions power, int runSlots, Func<long> residentBytes, TimeProvider time)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(runSlots, 1);
        _power = power;
        _slots = runSlots;
        _residentBytes = residentBytes;
        _time = time;
    }

    public override string Name => "cpu-model";

    public override EnergySource Source => EnergySource.Modelled;

    public override Device Device => Device.Cpu;

    public override double IdleWatts => _power.IdleWattsPerCore * Environment.ProcessorCount;

    public override RunWindow BeginRun() => new();

    /// <summary>Modelled joules of <paramref name="usage"/>, without charging anything (a cache lookup's CPU time, for one).</summary>
    public long Nanojoules(RunUsage usage)
    {
        var cpu = usage.CpuNanoseconds * _power.WattsPerActiveCore;
        var memory = usage.WallNanoseconds * _power.MemoryWattsPerGiB * ResidentGiB() / _slots;
        return (long)Math.Round(cpu + memory);
    }

    protected override RunEnergy Measure(RunWindow window, RunUsage usage) =>
        new(Nanojoules(usage), usage.CpuNanoseconds, EnergySource.Modelled, Device.Cpu);

    /// <summary>The process's resident memory in GiB, sampled at most once a second (reading it costs a system call).</summary>
    private double ResidentGiB()
    {
        var now = _time.GetTimestamp();
        lock (_lock)
        {
            if (now - _residentSampledAt >= _time.TimestampFrequency || _residentSampledAt == long.MinValue)
            {
                _residentGiB = _residentBytes() / (1024.0 * 1024 * 1024);
                _residentSampledAt = now;
            }

            return _residentGiB;
        }
    }
}

/// <summary>
/// A meter over a <see cref="EnergyLedger"/>: a hardware counter (RAPL, NVML) read at every run's
/// start and end, or the GPU model (a constant busy power). CPU device time is the run's CPU time;
/// GPU device time is the run's share of the GPU's busy time.
/// </summary>
public sealed class LedgerMeter : EnergyMeter
{
    private readonly EnergyLedger _ledger;
    private readonly IEnergyCounter? _counter;
    private readonly double _modelIdleWatts;

    /// <summary>A measured meter over <paramref name="counter"/>, taking <paramref name="baselineWatts"/> (null: learned) off as idle power.</summary>
    public LedgerMeter(IEnergyCounter counter, double? baselineWatts, TimeProvider time)
    {
        _counter = counter;
        _ledger = new EnergyLedger(counter, baselineWatts, time);
        Device = counter.Device;
        Name = counter.Name;
    }

    /// <summary>The GPU model: <paramref name="activeWatts"/> while any run is in progress, split among the runs in progress.</summary>
    public LedgerMeter(double activeWatts, double idleWatts, TimeProvider time)
    {
        _ledger = new EnergyLedger(activeWatts, time);
        _modelIdleWatts = idleWatts;
        Device = Device.Gpu;
        Name = "gpu-model";
    }

    public override string Name { get; }

    public override EnergySource Source => _counter is null ? EnergySource.Modelled : EnergySource.Measured;

    public override Device Device { get; }

    public override double IdleWatts => _counter is null ? _modelIdleWatts : _ledger.IdleWatts;

    /// <summary>The ledger's own totals, for tests and the busy-window view.</summary>
    public EnergyLedger Ledger => _ledger;

    public override RunWindow BeginRun() => _ledger.Begin();

    public override void Poll() => _ledger.Advance();

    protected override RunEnergy Measure(RunWindow window, RunUsage usage)
    {
        _ledger.End(window);
        var device = Device == Device.Cpu ? usage.CpuNanoseconds : window.DeviceNanoseconds;
        return new RunEnergy(window.Nanojoules, device, Source, Device);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _counter?.Dispose();
        }

        base.Dispose(disposing);
    }
}
