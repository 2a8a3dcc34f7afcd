using System.Text.Json.Serialization;
using EffServe.Core.Tensors;
using EffServe.Zoo.Data;

namespace EffServe.Cli.Commands.Zoo;

// The documents `effserve zoo ... --json` writes: camelCase, absent values left out. They are an
// interface for scripts: add fields, never rename or remove them.

public sealed record TensorReport(string Name, string Datatype, IReadOnlyList<long> Shape)
{
    public static TensorReport From(TensorSpec spec) => new(spec.Name, spec.DataType.ToWireName(), spec.Shape);
}

/// <summary>A converted variant against its source on the same samples.</summary>
public sealed record ComparisonReport(
    string Output,
    int Samples,
    string Source,
    double? ReferenceAccuracy,
    double? ConvertedAccuracy,
    double? AccuracyDeltaPoints,
    double TopClassAgreement,
    double MaxAbsDifference,
    double MaxAbsReference)
{
    public static ComparisonReport From(OutputComparison c) => new(
        c.Output, c.Samples, c.Source, c.ReferenceAccuracy, c.CandidateAccuracy, c.AccuracyDeltaPoints, c.TopClassAgreement, c.MaxAbsDifference, c.MaxAbsReference);
}

/// <summary><c>effserve zoo import --json</c>.</summary>
public sealed record ImportReport(
    string Model,
    string Folder,
    IReadOnlyList<TensorReport> Inputs,
    IReadOnlyList<TensorReport> Outputs,
    int MaxBatchSize,
    string Variant,
    string File,
    int? EvaluationSamples,
    int Labels,
    IReadOnlyList<string> DroppedVariants);

/// <summary><c>effserve zoo quantize --json</c>.</summary>
public sealed record QuantizeReport(
    string Model,
    string Variant,
    string File,
    string Method,
    double? Percentile,
    string CalibrationSource,
    int CalibrationSamples,
    IReadOnlyDictionary<string, int> QuantizedNodes,
    int QuantizedTensors,
    int FoldedActivations,
    IReadOnlyList<string> FloatOperators,
    IReadOnlyDictionary<string, int> OrtIntegerKernels,
    IReadOnlyDictionary<string, int> OrtFloatKernels,
    ComparisonReport Comparison);

/// <summary><c>effserve zoo fp16 --json</c>.</summary>
public sealed record Fp16Report(
    string Model,
    string Variant,
    string File,
    string Provider,
    IReadOnlyList<string> KeptFp32,
    int ConvertedInitializers,
    int KeptInitializers,
    IReadOnlyDictionary<string, int> KeptNodes,
    int Casts,
    long ClampedValues,
    long FlushedValues,
    ComparisonReport? CpuComparison,
    string? CpuSkipReason);

public sealed record StageReport(string File, string Exit, IReadOnlyList<string> Inputs, IReadOnlyList<string> Outputs, int Nodes);

/// <summary><c>effserve zoo early-exit --json</c>.</summary>
public sealed record EarlyExitReport(
    string Model,
    string Variant,
    double Threshold,
    IReadOnlyList<StageReport> Stages,
    string CheckSource,
    int CheckSamples,
    IReadOnlyDictionary<string, double> MaxAbsDifference);

/// <summary><c>effserve zoo synth --json</c>.</summary>
public sealed record SynthReport(
    string Model,
    string Architecture,
    string File,
    long FileBytes,
    int Seed,
    int Classes,
    int Resolution,
    long Parameters,
    long MultiplyAccumulates,
    long Flops);

[JsonSourceGenerationOptions(
    WriteIndented = true,
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals)]
[JsonSerializable(typeof(ImportReport))]
[JsonSerializable(typeof(QuantizeReport))]
[JsonSerializable(typeof(Fp16Report))]
[JsonSerializable(typeof(EarlyExitReport))]
[JsonSerializable(typeof(SynthReport))]
internal sealed partial class ZooJsonContext : JsonSerializerContext;
