namespace EffServe.Core.Accounting;

/// <summary>
/// The load on one model in one replica: the offered load (requests per second that arrived over
/// the last window) beside the capacity (requests per second the replica's run slots can take while
/// staying within the SLO, from a smoothed compute time per request) — the autoscaling signal —
/// and the requests in the service and in its queue right now.
/// </summary>
public sealed class LoadTracker
{
    private readonly TimeProvider _time;
    private long _active;
    private long _queued;
    private readonly long[] _counts;
    private readonly long[] _seconds;
    private readonly double _smoothing;
    private readonly object _lock = new();
    private double _computeSeconds;
    private bool _hasCompute;

    /// <param name="time">The clock.</param>
    /// <param name="windowSeconds">Whole seconds the offered load is averaged over.</param>
    /// <param name="smoothing">Weight of each new compute time in the moving average (0–1].</param>
    public LoadTracker(TimeProvider time, int windowSeconds = 10, double smoothing = 0.05)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(windowSeconds, 1);
        if (smoothing is <= 0 or > 1)
        {
            throw new ArgumentOutOfRangeException(nameof(smoothing), smoothing, "The smoothing weight lies in (0, 1].");
        }

        _time = time;
        _smoothing = smoothing;
        // One bucket per second of the window, plus the current (incomplete) second.
        _counts = new long[windowSeconds + 1];
        _seconds = new long[windowSeconds + 1];
        Array.Fill(_seconds, long.MinValue);
    }

    /// <summary>Seconds the offered load is averaged over.</summary>
    public int WindowSeconds => _counts.Length - 1;

    /// <summary>Smoothed compute seconds per request; 0 before the first.</summary>
    public double ComputeSecondsPerRequest
    {
        get
        {
            lock (_lock)
            {
                return _hasCompute ? _computeSeconds : 0;
            }
        }
    }

    /// <summary>Requests of the model inside the service now.</summary>
    public long Active => Interlocked.Read(ref _active);

    /// <summary>Requests of the model waiting for a run slot now.</summary>
    public long Queued => Interlocked.Read(ref _queued);

    /// <summary>A request left the service (answered or failed); pairs with <see cref="RecordArrival"/>.</summary>
    public void RecordDeparture() => Interlocked.Decrement(ref _active);

    /// <summary>A request began waiting for a run slot.</summary>
    public void EnterQueue() => Interlocked.Increment(ref _queued);

    /// <summary>A request stopped waiting for a run slot (it got one, or gave up).</summary>
    public void LeaveQueue() => Interlocked.Decrement(ref _queued);

    /// <summary>Counts one arriving request, which is then in the service until <see cref="RecordDeparture"/>.</summary>
    public void RecordArrival()
    {
        Interlocked.Increment(ref _active);
        var second = Second();
        lock (_lock)
        {
            var i = (int)(second % _counts.Length);
            if (_seconds[i] != second)
            {
                _seconds[i] = second;
                _counts[i] = 0;
            }

            _counts[i]++;
        }
    }

    /// <summary>Folds one request's compute time (its share of its run) into the moving average.</summary>
    public void RecordCompute(double seconds)
    {
        if (!double.IsFinite(seconds) || seconds < 0)
        {
            return;
        }

        lock (_lock)
        {
            _computeSeconds = _hasCompute ? _computeSeconds + (_smoothing * (seconds - _computeSeconds)) : seconds;
            _hasCompute = true;
        }
    }

    /// <summary>Requests per second that arrived over the last complete window seconds.</summary>
    public double OfferedPerSecond()
    {
        var current = Second();
        long sum = 0;
        lock (_lock)
        {
            for (var i = 0; i < _counts.Length; i++)
            {
                var age = current - _seconds[i];
                if (age >= 1 && age <= WindowSeconds)
                {
                    sum += _counts[i];
                }
            }
        }

        return (double)sum / WindowSeconds;
    }

    /// <summary>
    /// Requests per second <paramref name="slots"/> run slots can take with each slot busy at most
    /// <paramref name="utilisation"/> of the time (the headroom that keeps queueing within the SLO);
    /// 0 before any compute time was seen.
    /// </summary>
    public double CapacityPerSecond(int slots, double utilisation)
    {
        var perRequest = ComputeSecondsPerRequest;
        return perRequest > 0 ? slots * utilisation / perRequest : 0;
    }

    private long Second() => _time.GetTimestamp() / _time.TimestampFrequency;
}
