using EffServe.Core.Zoo;

namespace EffServe.Core.Selection;

/// <summary>What the latency model predicts for one batch size, and where the figure comes from.</summary>
/// <param name="BatchSize">Samples in the run.</param>
/// <param name="ProfileMs">The profile's p95 for this batch size (interpolated between measured sizes); null without a profile.</param>
/// <param name="ObservedMs">The high quantile of the recent runs of this size on this replica; null until enough ran.</param>
/// <param name="Observations">Runs of this size in the window.</param>
/// <param name="PredictedMs">What selection and batching use; null while nothing is known.</param>
public readonly record struct LatencyEstimate(int BatchSize, double? ProfileMs, double? ObservedMs, int Observations, double? PredictedMs);

/// <summary>
/// Predicted run time of one variant per batch size. It starts from the variant's measured profile
/// (p95 per batch size) and follows the runs this replica observes: per batch size, a sliding
/// window of the latest run times whose 90th percentile replaces the profile's figure once enough
/// runs were seen. One slow run moves a high quantile of a window little, and a lasting change
/// (another machine, a busy neighbour) takes the window over within <see cref="Window"/> runs.
/// Runs older than <see cref="MaxAge"/> no longer count: a figure learnt during a burst of
/// contention would otherwise outlive it, and a variant predicted too slow to meet any budget is
/// never run again to learn better (its requests are all shed), so the figure must age out.
/// Batch sizes never observed are scaled from the profile by how far observation has moved the
/// sizes that were. For early exit, times are kept at the profile's threshold and scaled to
/// another threshold by the mean latency the profile measured at each.
/// </summary>
public sealed class LatencyModel
{
    /// <summary>Runs kept per batch size.</summary>
    public const int Window = 64;

    /// <summary>Runs of a batch size needed before they replace the profile's figure.</summary>
    public const int MinObservations = 5;

    private const double Quantile = 0.9;

    /// <summary>How long an observed run counts.</summary>
    public static readonly TimeSpan MaxAge = TimeSpan.FromSeconds(10);

    /// <summary>How often old runs are looked for: an observation lives at most <see cref="MaxAge"/> plus this.</summary>
    private static readonly TimeSpan ExpireEvery = TimeSpan.FromMilliseconds(100);

    private readonly Lock _lock = new();
    private readonly SortedDictionary<int, Observations> _observed = [];
    private readonly (int Batch, double Ms, double ItemsPerSecond)[] _profile;
    private readonly ThresholdPoint[] _thresholds;
    private readonly double _profileThreshold;
    private readonly TimeProvider _time;
    private long _lastExpired;

    /// <param name="profile">The variant's measured profile, or null.</param>
    /// <param name="profileThreshold">For early exit: the threshold the profile's latency table was measured at.</param>
    /// <param name="time">The clock that ages observations out (the system's by default).</param>
    public LatencyModel(VariantProfile? profile, double profileThreshold = 1.0, TimeProvider? time = null)
    {
        _time = time ?? TimeProvider.System;
        _profile = profile is null
            ? []
            : [.. profile.Latency.Where(p => p.BatchSize > 0 && p.P95Ms > 0).OrderBy(p => p.BatchSize).Select(p => (p.BatchSize, p.P95Ms, p.ItemsPerSecond))];
        _thresholds = profile is null ? [] : [.. profile.Thresholds.Where(t => t.MeanLatencyMs > 0).OrderBy(t => t.Threshold)];
        _profileThreshold = profileThreshold;
    }

    /// <summary>True when the profile measured any latency.</summary>
    public bool HasProfile => _profile.Length > 0;

    /// <summary>Predicted milliseconds to run <paramref name="batch"/> samples at <paramref name="threshold"/> (early exit), or null while nothing is known.</summary>
    public double? PredictMs(int batch, double? threshold = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batch, 1);
        double? atProfileThreshold;
        lock (_lock)
        {
            Expire();
            atProfileThreshold = PredictLocked(batch);
        }

        return atProfileThreshold * ThresholdFactor(threshold);
    }

    /// <summary>
    /// The profile's figure for <paramref name="batch"/> samples at <paramref name="threshold"/>,
    /// ignoring what this replica observed: what the run costs on an unloaded machine, comparable
    /// between variants whatever each happened to meet lately; null without a profile.
    /// </summary>
    public double? ProfiledMs(int batch, double? threshold = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batch, 1);
        return ProfileAt(batch) * ThresholdFactor(threshold);
    }

    /// <summary>Records a run of <paramref name="batch"/> samples at <paramref name="threshold"/> that took <paramref name="ms"/>.</summary>
    public void Observe(int batch, double ms, double? threshold = null)
    {
        if (batch < 1 || !double.IsFinite(ms) || ms < 0)
        {
            return;
        }

        var normalised = ms / ThresholdFactor(threshold);
        lock (_lock)
        {
            if (!_observed.TryGetValue(batch, out var window))
            {
                window = new Observations();
                _observed.Add(batch, window);
            }

            window.Add(normalised, _time.GetTimestamp());
        }
    }

    /// <summary>
    /// True when running <paramref name="batch"/> samples together serves more of them per second
    /// than one at a time by at least <paramref name="minGain"/> (0.1 = 10 %), by the profile; a
    /// variant without a profile is assumed to gain from batching.
    /// </summary>
    public bool BatchingPays(int batch, double minGain = 0.1)
    {
        if (batch <= 1)
        {
            return true;
        }

        if (_profile.Length == 0 || _profile[0].Batch != 1 || _profile[0].ItemsPerSecond <= 0)
        {
            return true;
        }

        // The best throughput at or below this size, against batch 1's.
        var best = _profile.Where(p => p.Batch <= batch && p.Batch > 1).Select(p => p.ItemsPerSecond).DefaultIfEmpty(0).Max();
        return best >= _profile[0].ItemsPerSecond * (1 + minGain);
    }

    /// <summary>
    /// The largest batch, up to <paramref name="limit"/>, worth forming: 1 where the profile shows
    /// batching does not pay, else the limit.
    /// </summary>
    public int LargestUsefulBatch(int limit, double minGain = 0.1) =>
        limit <= 1 || !BatchingPays(limit, minGain) ? 1 : limit;

    /// <summary>Every batch size the profile measured or this replica observed, with its figures.</summary>
    public IReadOnlyList<LatencyEstimate> Snapshot()
    {
        lock (_lock)
        {
            Expire();
            var sizes = _profile.Select(p => p.Batch).Concat(_observed.Keys).Distinct().Order();
            return [.. sizes.Select(b =>
            {
                _observed.TryGetValue(b, out var window);
                return new LatencyEstimate(b, ProfileAt(b), window?.Count >= MinObservations ? window.Quantile(Quantile) : null, window?.Count ?? 0, PredictLocked(b));
            })];
        }
    }

    /// <summary>
    /// Forgets runs older than <see cref="MaxAge"/>, and the sizes left with none; at most every
    /// <see cref="ExpireEvery"/>, since predictions are asked for several times a request.
    /// </summary>
    private void Expire()
    {
        var now = _time.GetTimestamp();
        if (_lastExpired != 0 && now - _lastExpired < (long)(ExpireEvery.TotalSeconds * _time.TimestampFrequency))
        {
            return;
        }

        _lastExpired = now;
        var oldest = now - (long)(MaxAge.TotalSeconds * _time.TimestampFrequency);
        List<int>? empty = null;
        foreach (var (batch, window) in _observed)
        {
            if (window.Expire(oldest) == 0)
            {
                (empty ??= []).Add(batch);
            }
        }

        foreach (var batch in empty ?? [])
        {
            _observed.Remove(batch);
        }
    }

    private double? PredictLocked(int batch)
    {
        if (_observed.TryGetValue(batch, out var own) && own.Count >= MinObservations)
        {
            return own.Quantile(Quantile);
        }

        var seed = ProfileAt(batch);
        var scale = ObservedScale();
        if (seed is { } s)
        {
            return s * (scale ?? 1.0);
        }

        // No profile: scale the per-sample time of the nearest observed batch size.
        var nearest = _observed.Where(o => o.Value.Count >= MinObservations).OrderBy(o => Math.Abs(o.Key - batch)).Select(o => (int?)o.Key).FirstOrDefault();
        return nearest is { } n ? _observed[n].Quantile(Quantile) / n * batch : null;
    }

    /// <summary>Observed ÷ profiled, from the batch size observed most often; null when nothing was.</summary>
    private double? ObservedScale()
    {
        double? scale = null;
        var most = 0;
        foreach (var (batch, window) in _observed)
        {
            if (window.Count >= MinObservations && window.Count > most && ProfileAt(batch) is { } seed)
            {
                most = window.Count;
                scale = window.Quantile(Quantile) / seed;
            }
        }

        return scale;
    }

    /// <summary>The profile's p95 at <paramref name="batch"/>: interpolated between measured sizes, per-sample beyond them.</summary>
    private double? ProfileAt(int batch)
    {
        if (_profile.Length == 0)
        {
            return null;
        }

        var first = _profile[0];
        if (batch <= first.Batch)
        {
            return first.Ms / first.Batch * batch;
        }

        for (var i = 1; i < _profile.Length; i++)
        {
            var (b, ms, _) = _profile[i];
            if (batch <= b)
            {
                var (a, aMs, _) = _profile[i - 1];
                return aMs + ((ms - aMs) * (batch - a) / (b - a));
            }
        }

        var last = _profile[^1];
        return last.Ms / last.Batch * batch;
    }

    /// <summary>Mean latency at <paramref name="threshold"/> ÷ mean latency at the profile's threshold; 1 without a threshold grid.</summary>
    private double ThresholdFactor(double? threshold)
    {
        if (threshold is not { } t || _thresholds.Length == 0)
        {
            return 1.0;
        }

        var at = MeanLatencyAt(t);
        var reference = MeanLatencyAt(_profileThreshold);
        return at > 0 && reference > 0 ? at / reference : 1.0;
    }

    private double MeanLatencyAt(double threshold)
    {
        if (threshold <= _thresholds[0].Threshold)
        {
            return _thresholds[0].MeanLatencyMs;
        }

        for (var i = 1; i < _thresholds.Length; i++)
        {
            var hi = _thresholds[i];
            if (threshold <= hi.Threshold)
            {
                var lo = _thresholds[i - 1];
                return lo.MeanLatencyMs + ((hi.MeanLatencyMs - lo.MeanLatencyMs) * (threshold - lo.Threshold) / (hi.Threshold - lo.Threshold));
            }
        }

        return _thresholds[^1].MeanLatencyMs;
    }

    /// <summary>
    /// The latest <see cref="Window"/> run times of one batch size, oldest first, with when each was
    /// seen, and the same times kept sorted as they come and go, so a quantile is one index.
    /// </summary>
    private sealed class Observations
    {
        private readonly Queue<(double Ms, long At)> _runs = new(Window);
        private readonly double[] _sorted = new double[Window];

        public int Count => _runs.Count;

        public void Add(double value, long at)
        {
            if (_runs.Count == Window)
            {
                Remove(_runs.Dequeue().Ms);
            }

            _runs.Enqueue((value, at));
            var count = _runs.Count - 1;
            var index = Array.BinarySearch(_sorted, 0, count, value);
            index = index < 0 ? ~index : index;
            Array.Copy(_sorted, index, _sorted, index + 1, count - index);
            _sorted[index] = value;
        }

        /// <summary>Drops the runs seen before <paramref name="oldest"/>; the runs left.</summary>
        public int Expire(long oldest)
        {
            while (_runs.Count > 0 && _runs.Peek().At < oldest)
            {
                Remove(_runs.Dequeue().Ms);
            }

            return _runs.Count;
        }

        public double Quantile(double q)
        {
            var count = _runs.Count;
            var index = (int)Math.Ceiling(q * count) - 1;
            return _sorted[Math.Clamp(index, 0, count - 1)];
        }

        /// <summary>Takes one copy of <paramref name="value"/> out of the sorted times (the queue has already let it go).</summary>
        private void Remove(double value)
        {
            var count = _runs.Count + 1;
            var index = Array.BinarySearch(_sorted, 0, count, value);
            Array.Copy(_sorted, index + 1, _sorted, index, count - index - 1);
        }
    }
}
