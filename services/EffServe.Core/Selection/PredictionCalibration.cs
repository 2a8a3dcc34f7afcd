namespace EffServe.Core.Selection;

/// <summary>
/// How far this replica's recent requests took beyond what was predicted for them when they were
/// admitted: the 90th percentile of actual ÷ predicted time from admission to the end of the run,
/// over the requests of the last <see cref="MaxAge"/> (at most <see cref="Window"/>).
/// <para>
/// The latency model predicts the run and the queue from run times alone. What it cannot see —
/// request handling around the run (decoding, scheduling, encoding) competing with the runs for the
/// same cores, thread-pool hand-offs, a neighbour's load — shows here as a ratio above 1, and it
/// grows with the load: a saturated CPU slows every stage of every request. Selection multiplies
/// its predictions by this factor, so under overload the heavy variants stop fitting tight budgets
/// and the cheaper ones take the load, which is what relieves it. The factor follows the load back
/// down as requests again finish as predicted, and with no requests for <see cref="MaxAge"/> it
/// returns to <see cref="Neutral"/>.
/// </para>
/// </summary>
public sealed class PredictionCalibration
{
    /// <summary>Requests kept.</summary>
    public const int Window = 256;

    /// <summary>Requests needed before the factor leaves <see cref="Neutral"/>.</summary>
    public const int MinObservations = 16;

    /// <summary>The factor while too little is known.</summary>
    public const double Neutral = 1.0;

    /// <summary>Predictions shorter than this are too small to compare against (timer and scheduling noise).</summary>
    public const double MinPredictedMs = 0.02;

    /// <summary>Bounds of the factor: predictions are never trusted beyond halving them, nor inflated without limit.</summary>
    public const double MinFactor = 0.5;

    public const double MaxFactor = 100;

    private const double Quantile = 0.9;

    /// <summary>How long a request's ratio counts.</summary>
    public static readonly TimeSpan MaxAge = TimeSpan.FromSeconds(3);

    private readonly Lock _lock = new();
    private readonly Queue<(double Ratio, long At)> _ratios = new(Window);
    private readonly TimeProvider _time;
    private double _factor = Neutral;
    private bool _dirty;

    public PredictionCalibration(TimeProvider? time = null)
    {
        _time = time ?? TimeProvider.System;
    }

    /// <summary>What predictions are multiplied by now.</summary>
    public double Factor
    {
        get
        {
            lock (_lock)
            {
                Expire();
                if (_dirty)
                {
                    _factor = Compute();
                    _dirty = false;
                }

                return _factor;
            }
        }
    }

    /// <summary>Records a request that was predicted to take <paramref name="predictedMs"/> from admission to the end of its run and took <paramref name="actualMs"/>.</summary>
    public void Observe(double predictedMs, double actualMs)
    {
        if (!double.IsFinite(predictedMs) || !double.IsFinite(actualMs) || predictedMs < MinPredictedMs || actualMs < 0)
        {
            return;
        }

        lock (_lock)
        {
            if (_ratios.Count == Window)
            {
                _ratios.Dequeue();
            }

            _ratios.Enqueue((actualMs / predictedMs, _time.GetTimestamp()));
            _dirty = true;
        }
    }

    private void Expire()
    {
        var oldest = _time.GetTimestamp() - (long)(MaxAge.TotalSeconds * _time.TimestampFrequency);
        while (_ratios.Count > 0 && _ratios.Peek().At < oldest)
        {
            _ratios.Dequeue();
            _dirty = true;
        }
    }

    private double Compute()
    {
        if (_ratios.Count < MinObservations)
        {
            return Neutral;
        }

        var sorted = _ratios.Select(r => r.Ratio).Order().ToArray();
        var value = sorted[Math.Clamp((int)Math.Ceiling(Quantile * sorted.Length) - 1, 0, sorted.Length - 1)];
        return Math.Clamp(value, MinFactor, MaxFactor);
    }
}
