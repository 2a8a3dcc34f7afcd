using EffServe.Zoo.Data;
using EffServe.Zoo.Onnx;
using EffServe.Zoo.OnnxFormat;
using Microsoft.ML.OnnxRuntime;

namespace EffServe.Zoo.Quantization;

/// <summary>How activation ranges are chosen from what calibration saw.</summary>
public enum CalibrationMethod
{
    /// <summary>The smallest and largest value seen.</summary>
    MinMax,

    /// <summary>The values at a low and a high percentile, so rare outliers do not stretch the range.</summary>
    Percentile,

    /// <summary>The clipping threshold whose 8-bit histogram loses least information (KL divergence).</summary>
    Entropy,
}

/// <summary>A tensor's range as calibration chose it.</summary>
public readonly record struct TensorRange(float Min, float Max);

/// <summary>How to calibrate.</summary>
public sealed record CalibrationSettings
{
    public CalibrationMethod Method { get; init; } = CalibrationMethod.MinMax;

    /// <summary>For Percentile: the share of values (in percent) the range keeps on each side.</summary>
    public double Percentile { get; init; } = 99.99;

    /// <summary>Histogram bins for Percentile and Entropy.</summary>
    public int Bins { get; init; } = 2048;

    public int BatchSize { get; init; } = OrtRunner.DefaultBatchSize;
}

/// <summary>
/// Collects activation ranges by running the FP32 model in ONNX Runtime with the tensors of
/// interest added as graph outputs. MinMax needs one pass over the samples; Percentile and Entropy
/// take a second pass that fills a histogram per tensor between the extremes the first pass found.
/// </summary>
public static class Calibrator
{
    public static Dictionary<string, TensorRange> Collect(
        OnnxModel model,
        IReadOnlyCollection<string> tensors,
        SampleSet samples,
        bool hasBatchDimension,
        CalibrationSettings settings,
        IToolProgress progress,
        CancellationToken cancellationToken = default)
    {
        if (tensors.Count == 0)
        {
            return [];
        }

        var augmented = model.Clone();
        var existing = augmented.Graph.Output.Select(o => o.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var name in tensors.Where(existing.Add))
        {
            augmented.Graph.Output.Add(new ValueInfoProto { Name = name });
        }

        var names = tensors.ToList();
        using var session = OrtRunner.Open(augmented.ToBytes(), GraphOptimizationLevel.ORT_DISABLE_ALL);
        var lows = new float[names.Count];
        var highs = new float[names.Count];
        Array.Fill(lows, float.PositiveInfinity);
        Array.Fill(highs, float.NegativeInfinity);
        using (var step = progress.Start("Calibrating: ranges", samples.Count))
        {
            OrtRunner.Run(session, samples, hasBatchDimension, names, (_, _, outputs) =>
            {
                for (var t = 0; t < names.Count; t++)
                {
                    foreach (var v in outputs[t].GetTensorDataAsSpan<float>())
                    {
                        if (float.IsFinite(v))
                        {
                            lows[t] = Math.Min(lows[t], v);
                            highs[t] = Math.Max(highs[t], v);
                        }
                    }
                }
            }, settings.BatchSize, step, cancellationToken);
        }

        var ranges = new Dictionary<string, TensorRange>(StringComparer.Ordinal);
        for (var t = 0; t < names.Count; t++)
        {
            ranges[names[t]] = float.IsFinite(lows[t]) ? new TensorRange(lows[t], highs[t]) : new TensorRange(0, 0);
        }

        if (settings.Method == CalibrationMethod.MinMax)
        {
            return ranges;
        }

        // Second pass: a histogram of each tensor's values (of their magnitudes for Entropy).
        var histograms = names.Select(n => new Histogram(settings.Bins, ranges[n], magnitudes: settings.Method == CalibrationMethod.Entropy)).ToArray();
        using (var step = progress.Start("Calibrating: histograms", samples.Count))
        {
            OrtRunner.Run(session, samples, hasBatchDimension, names, (_, _, outputs) =>
            {
                for (var t = 0; t < names.Count; t++)
                {
                    histograms[t].Add(outputs[t].GetTensorDataAsSpan<float>());
                }
            }, settings.BatchSize, step, cancellationToken);
        }

        for (var t = 0; t < names.Count; t++)
        {
            var seen = ranges[names[t]];
            ranges[names[t]] = settings.Method == CalibrationMethod.Percentile
                ? histograms[t].PercentileRange(settings.Percentile)
                : histograms[t].EntropyRange(seen);
        }

        return ranges;
    }
}

/// <summary>
/// A fixed-width histogram of a tensor's values over a known range, or of their magnitudes
/// (without exact zeros) for the entropy search.
/// </summary>
public sealed class Histogram
{
    private readonly long[] _counts;
    private readonly bool _magnitudes;
    private readonly double _low;
    private readonly double _width;

    public Histogram(int bins, TensorRange range, bool magnitudes)
    {
        _counts = new long[bins];
        _magnitudes = magnitudes;
        _low = magnitudes ? 0 : range.Min;
        var high = magnitudes ? Math.Max(Math.Abs(range.Min), Math.Abs(range.Max)) : range.Max;
        _width = high > _low ? (high - _low) / bins : 0;
    }

    public IReadOnlyList<long> Counts => _counts;

    public double BinWidth => _width;

    public void Add(ReadOnlySpan<float> values)
    {
        var last = _counts.Length - 1;
        foreach (var raw in values)
        {
            if (!float.IsFinite(raw))
            {
                continue;
            }

            if (_magnitudes && raw == 0)
            {
                // Exact zeros (everything ReLU cut off) are exact after quantisation whatever the
                // range; as a spike in the first bin they would push the entropy search towards
                // ever smaller thresholds.
                continue;
            }

            var v = _magnitudes ? Math.Abs(raw) : raw;
            var bin = _width > 0 ? (int)((v - _low) / _width) : 0;
            _counts[Math.Clamp(bin, 0, last)]++;
        }
    }

    /// <summary>The values at (100 - p)% and p% of the distribution: bin edges that keep p% on each side.</summary>
    public TensorRange PercentileRange(double percent)
    {
        var total = _counts.Sum();
        if (total == 0 || _width == 0)
        {
            return new TensorRange((float)_low, (float)(_low + _width * _counts.Length));
        }

        var tail = total * (1 - percent / 100.0);
        long below = 0;
        var lowBin = 0;
        while (lowBin < _counts.Length - 1 && below + _counts[lowBin] <= tail)
        {
            below += _counts[lowBin++];
        }

        long above = 0;
        var highBin = _counts.Length - 1;
        while (highBin > lowBin && above + _counts[highBin] <= tail)
        {
            above += _counts[highBin--];
        }

        return new TensorRange((float)(_low + lowBin * _width), (float)(_low + (highBin + 1) * _width));
    }

    /// <summary>
    /// The clipping threshold T whose quantised histogram (clipped at T, 128 levels for signed
    /// values, 256 for non-negative ones) is closest to the original in KL divergence; the range
    /// is what was seen, clipped to [-T, T].
    /// </summary>
    public TensorRange EntropyRange(TensorRange seen)
    {
        var levels = seen.Min >= 0 ? 256 : 128;
        var bins = _counts.Length;
        if (_width == 0 || bins <= levels)
        {
            return seen;
        }

        var best = bins;
        var bestDivergence = double.PositiveInfinity;
        var reference = new double[bins];
        var expanded = new double[bins];
        var beyond = new double[bins + 1];
        for (var i = bins - 1; i >= 0; i--)
        {
            beyond[i] = beyond[i + 1] + _counts[i];
        }

        for (var cut = levels; cut <= bins; cut++)
        {
            // Reference: the first `cut` bins, with everything beyond folded into the last of them.
            for (var i = 0; i < cut; i++)
            {
                reference[i] = _counts[i];
            }

            reference[cut - 1] += beyond[cut];

            // Candidate: the bins up to the cut (without the folded outliers, so that clipping
            // costs) merged into `levels` groups, each group's mass spread evenly over the bins
            // of the group that were not empty.
            var perLevel = (double)cut / levels;
            for (var level = 0; level < levels; level++)
            {
                var start = (int)Math.Floor(level * perLevel);
                var end = level == levels - 1 ? cut : (int)Math.Floor((level + 1) * perLevel);
                double mass = 0;
                var used = 0;
                for (var i = start; i < end; i++)
                {
                    mass += _counts[i];
                    used += _counts[i] > 0 ? 1 : 0;
                }

                var share = used > 0 ? mass / used : 0;
                for (var i = start; i < end; i++)
                {
                    expanded[i] = _counts[i] > 0 ? share : 0;
                }
            }

            var divergence = Divergence(reference.AsSpan(0, cut), expanded.AsSpan(0, cut));
            if (divergence < bestDivergence)
            {
                bestDivergence = divergence;
                best = cut;
            }
        }

        var threshold = (float)(best * _width);
        return new TensorRange(Math.Max(seen.Min, -threshold), Math.Min(seen.Max, threshold));
    }

    /// <summary>KL(p || q) of two unnormalised histograms; bins where p is 0 contribute nothing.</summary>
    private static double Divergence(ReadOnlySpan<double> p, ReadOnlySpan<double> q)
    {
        double pSum = 0, qSum = 0;
        for (var i = 0; i < p.Length; i++)
        {
            pSum += p[i];
            qSum += q[i];
        }

        if (pSum == 0 || qSum == 0)
        {
            return double.PositiveInfinity;
        }

        double divergence = 0;
        for (var i = 0; i < p.Length; i++)
        {
            if (p[i] <= 0)
            {
                continue;
            }

            // Where the candidate has nothing but the reference does, charge as if it had a trace.
            var pi = p[i] / pSum;
            var qi = q[i] > 0 ? q[i] / qSum : 1e-12;
            divergence += pi * Math.Log(pi / qi);
        }

        return divergence;
    }
}
