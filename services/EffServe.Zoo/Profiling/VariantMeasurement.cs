using System.Diagnostics;
using System.Globalization;
using EffServe.Core.Tensors;
using EffServe.Core.Zoo;
using EffServe.Onnx;

namespace EffServe.Zoo.Profiling;

/// <summary>Measures one loaded variant: latency per batch size, accuracy, and the early-exit threshold grid.</summary>
internal sealed class VariantMeasurement
{
    private readonly ModelRuntime _runtime;
    private readonly VariantDefinition _variant;
    private readonly MeasurementSettings _settings;
    private readonly IProgressStep _progress;
    private readonly CancellationToken _cancellationToken;
    private readonly List<string> _outputs;

    public VariantMeasurement(ModelRuntime runtime, ModelDefinition model, VariantDefinition variant, MeasurementSettings settings, IProgressStep progress, CancellationToken cancellationToken)
    {
        _runtime = runtime;
        _variant = variant;
        _settings = settings;
        _progress = progress;
        _cancellationToken = cancellationToken;
        _outputs = model.Outputs.Select(o => o.Name).ToList();
    }

    private bool IsEarlyExit => _variant.Kind == VariantKind.EarlyExit;

    /// <summary>The threshold runs use unless the grid sets one: the variant's own for early exit, which the service applies by default.</summary>
    private double OwnThreshold => IsEarlyExit ? _variant.ExitThreshold : 1.0;

    /// <summary>Units of progress <see cref="Run"/> reports: one per batch size, the accuracy pass, each threshold and the one-sample pass.</summary>
    public static int Steps(VariantDefinition variant, int batchSizes, bool evaluation, int thresholds) =>
        batchSizes + (evaluation ? 1 : 0) + (variant.Kind == VariantKind.EarlyExit && evaluation ? thresholds + 1 : 0);

    /// <param name="batchSizes">Batch sizes to time, ascending.</param>
    /// <param name="timing">Rows to time on: at least as many as the largest batch.</param>
    /// <param name="evaluation">The evaluation set when accuracy can be measured; null otherwise.</param>
    /// <param name="synthetic">Whether <paramref name="timing"/> is synthetic data.</param>
    /// <param name="thresholds">The early-exit grid, ascending.</param>
    public VariantReport Run(IReadOnlyList<int> batchSizes, SamplePool timing, SamplePool? evaluation, bool synthetic, IReadOnlyList<double> thresholds)
    {
        var grid = IsEarlyExit && evaluation is not null;
        var notes = new List<string>();
        if (IsEarlyExit)
        {
            notes.Add($"Latency per batch size is timed at the variant's exit_threshold {ProfileNumbers.Format(_variant.ExitThreshold)} on {(synthetic ? "synthetic inputs" : "evaluation samples")}, so it reflects the exits those inputs take.");
            if (evaluation is null)
            {
                notes.Add("The threshold grid needs an evaluation set with labels; it is not measured.");
            }
        }

        var latency = new List<LatencyResult>(batchSizes.Count);
        foreach (var batch in batchSizes)
        {
            var point = MeasureLatency(timing, batch);
            if (!point.Steady)
            {
                notes.Add(string.Create(CultureInfo.InvariantCulture, $"Batch {batch}: warm-up did not settle within {point.WarmupWindows} windows (three in a row within {_settings.WarmupTolerance * 100:0}%); its times may be noisy."));
            }

            latency.Add(point);
            _progress.Advance(1);
        }

        AccuracyResult? accuracy = null;
        var evalBatch = batchSizes[^1];
        if (evaluation is not null)
        {
            var pass = Evaluate(evaluation, OwnThreshold, evalBatch);
            accuracy = new AccuracyResult((double)pass.Correct / evaluation.Count, pass.Correct, evaluation.Count, evalBatch);
            _progress.Advance(1);
        }

        var points = grid ? MeasureThresholds(evaluation!, thresholds, evalBatch) : [];
        return new VariantReport(_variant.Name, _variant.Kind.ToManifestName(), _variant.Provider.ToManifestName(), null, accuracy, latency, points, notes);
    }

    private LatencyResult MeasureLatency(SamplePool pool, int batch)
    {
        // Cycle through every distinct batch the rows hold, so that early exit sees its real mix of exits.
        var batches = Enumerable.Range(0, pool.Count / batch).Select(j => pool.Rows(j * batch, batch)).ToArray();
        var next = 0;
        double RunOnce()
        {
            var inputs = batches[next];
            next = (next + 1) % batches.Length;
            return TimeRun(inputs, OwnThreshold);
        }

        var warm = Warmup.Run(RunOnce, _settings, _cancellationToken);
        var times = new List<double>(_settings.MinRuns);
        var started = Stopwatch.GetTimestamp();
        while (times.Count < _settings.MaxRuns && (times.Count < _settings.MinRuns || Stopwatch.GetElapsedTime(started) < _settings.MinTime))
        {
            _cancellationToken.ThrowIfCancellationRequested();
            times.Add(RunOnce());
        }

        var median = LatencyStatistics.Median(times);
        return new LatencyResult(
            batch,
            median,
            LatencyStatistics.Percentile(times, 95),
            times.Average(),
            batch * 1000.0 / median,
            times.Count,
            warm.Windows,
            warm.Steady);
    }

    private List<ThresholdResult> MeasureThresholds(SamplePool evaluation, IReadOnlyList<double> thresholds, int batch)
    {
        // Rounds, with the thresholds in a seeded random order in each, so that drift on a noisy
        // machine spreads over every threshold; a time counts as the median of its rounds.
        var rounds = _settings.ThresholdRounds;
        var random = new Random(_settings.Seed);
        var order = Enumerable.Range(0, thresholds.Count).ToArray();

        // The whole set in batches: accuracy and stages (the same in every round), and the batched time.
        var passes = new EvalPass[thresholds.Count, rounds];
        for (var r = 0; r < rounds; r++)
        {
            random.Shuffle(order);
            foreach (var t in order)
            {
                passes[t, r] = Evaluate(evaluation, thresholds[t], batch);
            }

            _progress.Advance((double)thresholds.Count / rounds);
        }

        // A one-sample request: each sample (of an even spread of the set) run alone.
        var samples = Spread(evaluation.Count, _settings.MaxSingleSamples);
        var warmNext = 0;
        Warmup.Run(() => TimeRun(evaluation.Rows(samples[warmNext++ % samples.Count], 1), OwnThreshold), _settings, _cancellationToken);
        var times = new double[thresholds.Count, rounds];
        var sums = new double[thresholds.Count];
        foreach (var sample in samples)
        {
            var inputs = evaluation.Rows(sample, 1);
            for (var r = 0; r < rounds; r++)
            {
                random.Shuffle(order);
                foreach (var t in order)
                {
                    times[t, r] = TimeRun(inputs, thresholds[t]);
                }
            }

            for (var t = 0; t < thresholds.Count; t++)
            {
                sums[t] += MedianOfRounds(r => times[t, r], rounds);
            }
        }

        _progress.Advance(1);
        var results = new List<ThresholdResult>(thresholds.Count);
        for (var t = 0; t < thresholds.Count; t++)
        {
            var first = passes[t, 0];
            double batchedMs = 0;
            for (var b = 0; b < first.BatchMs.Length; b++)
            {
                batchedMs += MedianOfRounds(r => passes[t, r].BatchMs[b], rounds);
            }

            results.Add(new ThresholdResult(
                thresholds[t],
                (double)first.Correct / evaluation.Count,
                first.Correct,
                (double)first.Stages / evaluation.Count,
                sums[t] / samples.Count,
                batchedMs / evaluation.Count,
                batch,
                samples.Count));
        }

        return results;
    }

    private static double MedianOfRounds(Func<int, double> time, int rounds)
    {
        var values = new double[rounds];
        for (var r = 0; r < rounds; r++)
        {
            values[r] = time(r);
        }

        return LatencyStatistics.Median(values);
    }

    /// <summary>Runs the whole set in batches: correct answers, stages run (summed over samples), and each batch's time.</summary>
    private EvalPass Evaluate(SamplePool evaluation, double threshold, int batch)
    {
        var labels = evaluation.Labels!;
        var predicted = new int[batch];
        var batchMs = new double[(evaluation.Count + batch - 1) / batch];
        var correct = 0;
        long stages = 0;
        for (var k = 0; k < batchMs.Length; k++)
        {
            _cancellationToken.ThrowIfCancellationRequested();
            var start = k * batch;
            var n = Math.Min(batch, evaluation.Count - start);
            var inputs = evaluation.Rows(start, n);
            var began = Stopwatch.GetTimestamp();
            var result = _runtime.Run(_variant.Name, inputs, _outputs, threshold, _cancellationToken);
            batchMs[k] = Stopwatch.GetElapsedTime(began).TotalMilliseconds;
            Scoring.ArgMax(result.Outputs[0], n, predicted);
            for (var i = 0; i < n; i++)
            {
                if (predicted[i] == labels[start + i])
                {
                    correct++;
                }

                stages += result.ExitStages?[i] ?? 1;
            }
        }

        return new EvalPass(correct, stages, batchMs);
    }

    private double TimeRun(IReadOnlyList<NamedTensor> inputs, double threshold)
    {
        var started = Stopwatch.GetTimestamp();
        _runtime.Run(_variant.Name, inputs, _outputs, threshold, _cancellationToken);
        return Stopwatch.GetElapsedTime(started).TotalMilliseconds;
    }

    /// <summary>All of 0..count-1, or <paramref name="max"/> of them spread evenly when there are more.</summary>
    internal static List<int> Spread(int count, int max) => max <= 0 || count <= max
        ? Enumerable.Range(0, count).ToList()
        : Enumerable.Range(0, max).Select(i => (int)((long)i * count / max)).ToList();

    private readonly record struct EvalPass(int Correct, long Stages, double[] BatchMs);
}
