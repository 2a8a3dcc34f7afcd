namespace EffServe.Core.Accounting;

/// <summary>
/// Splits a device's energy among the runs that overlap on it. Time is cut at every run's start and
/// end; in each piece, the energy the counter advanced (less the idle baseline) and the elapsed time
/// are shared evenly by the runs in progress, exactly, in whole nanojoules and nanoseconds. Pieces
/// with no run in progress are idle: their energy is never charged, and they teach the ledger the
/// device's idle power. So the runs' charges add up to the counter's total over the busy windows,
/// less the baseline.
/// </summary>
public sealed class EnergyLedger
{
    private readonly IEnergyCounter? _counter;
    private readonly double _modelWatts;
    private readonly double? _baselineWatts;
    private readonly TimeProvider _time;
    private readonly object _lock = new();
    private readonly List<RunWindow> _active = [];
    private long _lastTimestamp;
    private long _lastReading;
    private long _idleNanojoules;
    private long _idleNanoseconds;
    private long _busyNanojoules;
    private long _baselineNanojoules;

    /// <summary>A ledger over a hardware counter; <paramref name="baselineWatts"/> null learns the baseline from idle periods.</summary>
    public EnergyLedger(IEnergyCounter counter, double? baselineWatts, TimeProvider time)
    {
        _counter = counter;
        _baselineWatts = baselineWatts;
        _time = time;
        _lastTimestamp = time.GetTimestamp();
        _lastReading = counter.ReadNanojoules();
    }

    /// <summary>A ledger over a modelled device that draws <paramref name="busyWatts"/> while any run is in progress.</summary>
    public EnergyLedger(double busyWatts, TimeProvider time)
    {
        _modelWatts = busyWatts;
        _baselineWatts = 0;
        _time = time;
        _lastTimestamp = time.GetTimestamp();
    }

    /// <summary>Energy charged to runs (busy windows less the baseline), nanojoules.</summary>
    public long BusyNanojoules
    {
        get
        {
            lock (_lock)
            {
                return _busyNanojoules;
            }
        }
    }

    /// <summary>Energy of the idle windows plus the baseline taken off busy ones, nanojoules: never charged.</summary>
    public long IdleNanojoules
    {
        get
        {
            lock (_lock)
            {
                return _idleNanojoules + _baselineNanojoules;
            }
        }
    }

    /// <summary>The baseline in force: configured, else what the idle windows so far averaged (0 before any).</summary>
    public double IdleWatts
    {
        get
        {
            lock (_lock)
            {
                return Baseline();
            }
        }
    }

    public RunWindow Begin()
    {
        var window = new RunWindow();
        lock (_lock)
        {
            AdvanceLocked();
            _active.Add(window);
        }

        return window;
    }

    public void End(RunWindow window)
    {
        lock (_lock)
        {
            AdvanceLocked();
            _active.Remove(window);
        }
    }

    /// <summary>Brings the ledger up to now (a periodic poll keeps a wrapping counter honest).</summary>
    public void Advance()
    {
        lock (_lock)
        {
            AdvanceLocked();
        }
    }

    private void AdvanceLocked()
    {
        var now = _time.GetTimestamp();
        var elapsed = (long)((now - _lastTimestamp) * (1e9 / _time.TimestampFrequency));
        _lastTimestamp = now;
        long delta;
        if (_counter is not null)
        {
            var reading = _counter.ReadNanojoules();
            delta = Math.Max(0, reading - _lastReading);
            _lastReading = reading;
        }
        else
        {
            delta = _active.Count > 0 ? (long)Math.Round(elapsed * _modelWatts) : 0;
        }

        var n = _active.Count;
        if (n == 0)
        {
            _idleNanojoules += delta;
            _idleNanoseconds += elapsed;
            return;
        }

        var baseline = Math.Clamp((long)Math.Round(Baseline() * elapsed), 0, delta);
        var charged = delta - baseline;
        _baselineNanojoules += baseline;
        _busyNanojoules += charged;
        for (var i = 0; i < n; i++)
        {
            // Even shares in whole units; the first runs take the remainder, one unit each.
            _active[i].Nanojoules += (charged / n) + (i < charged % n ? 1 : 0);
            _active[i].DeviceNanoseconds += (elapsed / n) + (i < elapsed % n ? 1 : 0);
        }
    }

    private double Baseline() =>
        _baselineWatts ?? (_idleNanoseconds > 0 ? (double)_idleNanojoules / _idleNanoseconds : 0);
}
