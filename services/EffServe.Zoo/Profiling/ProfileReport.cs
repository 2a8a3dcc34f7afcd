using EffServe.Core.Zoo;

namespace EffServe.Zoo.Profiling;

/// <summary>What a profile measured, at full precision; the manifest gets the rounded <see cref="VariantReport.ToProfile"/>.</summary>
/// <param name="Model">The model's name.</param>
/// <param name="Manifest">Absolute path of the model's manifest.</param>
/// <param name="MeasuredAt">When measuring started, UTC, ISO 8601 to the second.</param>
/// <param name="Machine">Where it was measured.</param>
/// <param name="EvaluationSamples">Samples in the evaluation set; null when the model has none.</param>
/// <param name="Variants">One entry per variant asked for, in manifest order; skipped ones say why.</param>
/// <param name="Written">Whether the profiles were written into the manifest.</param>
/// <param name="Notes">What a reader of the numbers should know (synthetic inputs, batch sizes left out ...).</param>
public sealed record ProfileReport(
    string Model,
    string Manifest,
    string MeasuredAt,
    MachineDescription Machine,
    int? EvaluationSamples,
    IReadOnlyList<VariantReport> Variants,
    bool Written,
    IReadOnlyList<string> Notes);

/// <summary>One variant's measurements, or why it was skipped.</summary>
/// <param name="Name">The variant's name.</param>
/// <param name="Kind">fp32, int8, fp16 or early-exit.</param>
/// <param name="Provider">cpu, cuda or tensorrt.</param>
/// <param name="SkipReason">Why the variant was not measured (its provider does not run here); null when it was.</param>
/// <param name="Accuracy">Accuracy on the evaluation set (early exit: at its exit_threshold); null without an evaluation set.</param>
/// <param name="Latency">One point per batch size.</param>
/// <param name="Thresholds">Early exit with an evaluation set: one point per threshold of the grid.</param>
/// <param name="Notes">What is particular to this variant's numbers.</param>
public sealed record VariantReport(
    string Name,
    string Kind,
    string Provider,
    string? SkipReason,
    AccuracyResult? Accuracy,
    IReadOnlyList<LatencyResult> Latency,
    IReadOnlyList<ThresholdResult> Thresholds,
    IReadOnlyList<string> Notes)
{
    public bool Profiled => SkipReason is null;

    /// <summary>The profile as the manifest stores it: rounded, with when and where it was measured.</summary>
    public VariantProfile ToProfile(string measuredAt, string machine) => new(
        measuredAt,
        machine,
        Accuracy is null ? null : ProfileNumbers.Accuracy(Accuracy.Accuracy),
        Latency.Select(l => new LatencyPoint(
            l.BatchSize,
            ProfileNumbers.Time(l.P50Ms),
            ProfileNumbers.Time(l.P95Ms),
            ProfileNumbers.Time(l.ItemsPerSecond))).ToList(),
        Thresholds.Select(t => new ThresholdPoint(
            ProfileNumbers.Threshold(t.Threshold),
            ProfileNumbers.Accuracy(t.Accuracy),
            ProfileNumbers.Stages(t.MeanStages),
            ProfileNumbers.Time(t.MeanLatencyMs))).ToList());
}

/// <summary>Run times at one batch size, after warm-up.</summary>
/// <param name="BatchSize">Samples per run.</param>
/// <param name="P50Ms">Median time of one run (the whole batch).</param>
/// <param name="P95Ms">95th percentile (nearest rank) of one run.</param>
/// <param name="MeanMs">Mean time of one run.</param>
/// <param name="ItemsPerSecond">
/// Throughput at the median run time: batch size / p50. (The mean is dragged by the hiccups of a
/// shared machine; it is in <paramref name="MeanMs"/>.)
/// </param>
/// <param name="Runs">Timed runs.</param>
/// <param name="WarmupWindows">Warm-up windows run before timing.</param>
/// <param name="Steady">Whether the last three warm-up windows agreed within the tolerance.</param>
public sealed record LatencyResult(int BatchSize, double P50Ms, double P95Ms, double MeanMs, double ItemsPerSecond, int Runs, int WarmupWindows, bool Steady);

/// <summary>Top-1 accuracy: the arg-max of the model's first output against the evaluation labels.</summary>
/// <param name="Accuracy">Correct / Samples.</param>
/// <param name="Correct">Samples whose arg-max equals their label.</param>
/// <param name="Samples">Samples in the evaluation set.</param>
/// <param name="BatchSize">Samples per run while measuring it.</param>
public sealed record AccuracyResult(double Accuracy, int Correct, int Samples, int BatchSize);

/// <summary>An early-exit variant at one confidence threshold, over the whole evaluation set.</summary>
/// <param name="Threshold">The threshold.</param>
/// <param name="Accuracy">Top-1 accuracy.</param>
/// <param name="Correct">Samples answered correctly.</param>
/// <param name="MeanStages">Mean number of stages a sample ran through (1 = all left at the first exit).</param>
/// <param name="MeanLatencyMs">
/// Mean time of a one-sample request: each sample of (an even spread of) the set run alone, a few
/// rounds with the thresholds interleaved in a seeded random order, the median of a sample's rounds
/// counted. This is what the manifest stores as mean_latency_ms.
/// </param>
/// <param name="BatchedMsPerItem">Time to run the whole set in batches of <paramref name="BatchSize"/>, per sample (each batch's median over the rounds).</param>
/// <param name="BatchSize">Batch size of the batched pass.</param>
/// <param name="SingleSamples">Samples timed one by one for <paramref name="MeanLatencyMs"/>.</param>
public sealed record ThresholdResult(
    double Threshold,
    double Accuracy,
    int Correct,
    double MeanStages,
    double MeanLatencyMs,
    double BatchedMsPerItem,
    int BatchSize,
    int SingleSamples);
