using System.Globalization;

namespace EffServe.Zoo.Profiling;

/// <summary>What to profile: one model of a zoo folder, some or all of its variants.</summary>
public sealed record ProfileRequest(string ZooDirectory, string Model)
{
    /// <summary>Batch sizes measured when none are given; those above the model's max_batch_size are left out.</summary>
    public static IReadOnlyList<int> DefaultBatchSizes { get; } = [1, 2, 4, 8, 16, 32];

    /// <summary>Early-exit thresholds measured when none are given: 0 answers at stage 1, 1 runs every stage.</summary>
    public static IReadOnlyList<double> DefaultThresholds { get; } = [0, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 1.0];

    /// <summary>Variants to profile, by name; empty for every variant of the model.</summary>
    public IReadOnlyList<string> Variants { get; init; } = [];

    /// <summary>Batch sizes to time; null for <see cref="DefaultBatchSizes"/> capped at max_batch_size.</summary>
    public IReadOnlyList<int>? BatchSizes { get; init; }

    /// <summary>Early-exit thresholds to measure; null for <see cref="DefaultThresholds"/>.</summary>
    public IReadOnlyList<double>? Thresholds { get; init; }

    /// <summary>ONNX Runtime intra-op threads per run (the service's default is 1); 0 lets ONNX Runtime choose.</summary>
    public int IntraOpThreads { get; init; } = 1;

    /// <summary>When false, measure and report but leave the manifest as it is.</summary>
    public bool WriteManifest { get; init; } = true;

    public MeasurementSettings Measurement { get; init; } = new();

    /// <summary>Every problem with the request's own values (not the zoo's), in one list.</summary>
    public IReadOnlyList<string> Check()
    {
        var problems = new List<string>();
        if (string.IsNullOrWhiteSpace(Model))
        {
            problems.Add("a model name is required.");
        }

        foreach (var size in BatchSizes ?? [])
        {
            if (size < 1)
            {
                problems.Add(string.Create(CultureInfo.InvariantCulture, $"batch size {size} is not valid: batch sizes are whole numbers of 1 or more."));
            }
        }

        if (BatchSizes is { Count: 0 })
        {
            problems.Add("the list of batch sizes is empty.");
        }

        foreach (var threshold in Thresholds ?? [])
        {
            if (threshold is not (>= 0 and <= 1))
            {
                problems.Add(string.Create(CultureInfo.InvariantCulture, $"threshold {threshold} is not valid: early-exit thresholds lie in [0, 1]."));
            }
        }

        if (Thresholds is { Count: 0 })
        {
            problems.Add("the list of thresholds is empty.");
        }

        if (IntraOpThreads < 0)
        {
            problems.Add(string.Create(CultureInfo.InvariantCulture, $"{IntraOpThreads} intra-op threads is not valid: give 1 or more, or 0 to let ONNX Runtime choose."));
        }

        problems.AddRange(Measurement.Check());
        return problems;
    }
}

/// <summary>
/// How long to measure. Each timed point warms up until three consecutive windows of runs agree
/// (their medians within <see cref="WarmupTolerance"/>), then times runs until both
/// <see cref="MinRuns"/> and <see cref="MinTime"/> are reached.
/// </summary>
public sealed record MeasurementSettings
{
    /// <summary>Wall time one warm-up window aims at; its run count follows from the first run's time.</summary>
    public TimeSpan WarmupWindow { get; init; } = TimeSpan.FromMilliseconds(25);

    /// <summary>Fewest runs in a warm-up window.</summary>
    public int MinWindowRuns { get; init; } = 3;

    /// <summary>Agreement the last three windows need: max / min of their medians at most 1 + this.</summary>
    public double WarmupTolerance { get; init; } = 0.10;

    /// <summary>Windows after which measuring starts even if they never agreed (the point is then marked unsteady).</summary>
    public int MaxWarmupWindows { get; init; } = 40;

    /// <summary>Fewest timed runs per point.</summary>
    public int MinRuns { get; init; } = 30;

    /// <summary>Least time spent on timed runs per point.</summary>
    public TimeSpan MinTime { get; init; } = TimeSpan.FromSeconds(0.5);

    /// <summary>Most timed runs per point.</summary>
    public int MaxRuns { get; init; } = 20_000;

    /// <summary>
    /// Most evaluation samples timed one by one for the early-exit threshold grid (an even spread
    /// of the set when it is larger); 0 for all.
    /// </summary>
    public int MaxSingleSamples { get; init; } = 500;

    /// <summary>
    /// Rounds of the early-exit threshold grid. Each round runs the whole set in batches and each
    /// timed sample alone, once per threshold, the thresholds in a seeded random order; a time
    /// counts as the median of its rounds, so one hiccup of the machine does not skew a mean.
    /// </summary>
    public int ThresholdRounds { get; init; } = 3;

    /// <summary>Seed for the order thresholds are interleaved in, and for synthetic inputs.</summary>
    public int Seed { get; init; } = 20261125;

    public IReadOnlyList<string> Check()
    {
        var problems = new List<string>();
        if (WarmupWindow <= TimeSpan.Zero || MinWindowRuns < 1 || MaxWarmupWindows < 3)
        {
            problems.Add("warm-up needs a positive window, at least 1 run per window and at least 3 windows.");
        }

        if (WarmupTolerance is not (> 0 and < 1))
        {
            problems.Add("the warm-up tolerance lies between 0 and 1 (0.10 = windows within 10%).");
        }

        if (MinRuns < 1 || MaxRuns < MinRuns || MinTime < TimeSpan.Zero)
        {
            problems.Add("measuring needs at least 1 run, a maximum no smaller than the minimum, and a time of 0 or more.");
        }

        if (MaxSingleSamples < 0 || ThresholdRounds < 1)
        {
            problems.Add("the threshold grid needs 0 (all) or more single samples and at least 1 round.");
        }

        return problems;
    }
}
