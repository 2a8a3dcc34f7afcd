namespace EffServe.Core.Selection;

/// <summary>
/// How much longer this replica's recent requests took than was predicted for them when they were
/// admitted: the 90th percentile of actual − predicted milliseconds, from the request's arrival in
/// the engine to the end of its run, over the requests of the last <see cref="MaxAge"/> (at most
/// <see cref="Window"/>).
/// <para>
/// The latency model predicts the queue and the run from run times alone. What it cannot see —
/// decoding, thread hand-offs, the queue's real drain rate when request handling competes with the
/// runs for the same cores — shows here, and it grows with the load. Selection adds this excess to
/// its predictions, so under overload the heavy variants stop fitting tight budgets and the lighter
/// ones take the load, which is what relieves it. The excess follows the load back down as requests
/// again finish as predicted, and with no requests for <see cref="MaxAge"/> it returns to 0. It is an
/// amount of time, not a ratio, because most of what it measures is a cost per request: a ratio
/// would blow up for the shortest predictions (an early exit at its lowest threshold).
/// </para>
/// </summary>
public sealed class PredictionCalibration
{
    /// <summary>Requests kept.</summary>
    public const int Window = 256;

    /// <summary>Requests needed before the excess counts.</summary>
    public const int MinObservations = 16;

    /// <summary>The largest excess added, milliseconds.</summary>
    public const double MaxExcessMs = 1000;

    private const double Quantile = 0.9;

    /// <summary>How long a request's ratio counts.</summary>
    public static readonly TimeSpan MaxAge = TimeSpan.FromSeconds(3);

    /// <summary>The excess is recomputed at most this often: it sorts the window, and the figure moves slowly.</summary>
    public static readonly TimeSpan RefreshEvery = TimeSpan.FromMilliseconds(20);

    private readonly Lock _lock = new();
    private readonly Queue<(double Excess, long At)> _excesses = new(Window);
    private readonly TimeProvider _time;
    private double _excess;
    private bool _dirty;
    private long _computedAt = long.MinValue;

    public PredictionCalibration(TimeProvider? time = null)
    {
        _time = time ?? TimeProvider.System;
    }

    /// <summary>Milliseconds added to predictions now (0 while too little is known or requests finish as predicted).</summary>
    public double ExcessMs
    {
        get
        {
            lock (_lock)
            {
                var now = _time.GetTimestamp();
                if (_computedAt == long.MinValue || now - _computedAt >= RefreshEvery.TotalSeconds * _time.TimestampFrequency)
                {
                    _computedAt = now;
                    Expire();
                    if (_dirty)
                    {
                        _excess = Compute();
                        _dirty = false;
                    }
                }

                return _excess;
            }
        }
    }

    /// <summary>Records a request that was predicted to take <paramref name="predictedMs"/> from admission to the end of its run and took <paramref name="actualMs"/>.</summary>
    public void Observe(double predictedMs, double actualMs)
    {
        if (!double.IsFinite(predictedMs) || !double.IsFinite(actualMs) || predictedMs < 0 || actualMs < 0)
        {
            return;
        }

        lock (_lock)
        {
            if (_excesses.Count == Window)
            {
                _excesses.Dequeue();
            }

            _excesses.Enqueue((actualMs - predictedMs, _time.GetTimestamp()));
            _dirty = true;
        }
    }

    private void Expire()
    {
        var oldest = _time.GetTimestamp() - (long)(MaxAge.TotalSeconds * _time.TimestampFrequency);
        while (_excesses.Count > 0 && _excesses.Peek().At < oldest)
        {
            _excesses.Dequeue();
            _dirty = true;
        }
    }

    private double Compute()
    {
        if (_excesses.Count < MinObservations)
        {
            return 0;
        }

        var sorted = _excesses.Select(r => r.Excess).Order().ToArray();
        var value = sorted[Math.Clamp((int)Math.Ceiling(Quantile * sorted.Length) - 1, 0, sorted.Length - 1)];
        return Math.Clamp(value, 0, MaxExcessMs);
    }
}
