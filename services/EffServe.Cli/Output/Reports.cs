using System.Text.Json.Nodes;
using EffServe.Cli.Inference;
using EffServe.Cli.Listing;

namespace EffServe.Cli.Output;

// The documents --json writes. Property names are camelCase; absent values are left out. They are
// an interface for scripts: add fields, never rename or remove them.

/// <summary><c>effserve models --json</c>.</summary>
public sealed record ModelsReport(string Endpoint, string Source, IReadOnlyList<ModelInfo> Models);

/// <summary><c>effserve infer --json</c>.</summary>
public sealed record InferReport(
    string Endpoint,
    string Model,
    string? Version,
    string Output,
    string Encoding,
    IReadOnlyList<SampleResult> Samples,
    double RoundTripMs)
{
    /// <summary>The variant that answered (<c>effserve.variant</c>).</summary>
    public string? Variant { get; init; }

    /// <summary>The early-exit stage taken (<c>effserve.exit_stage</c>).</summary>
    public long? ExitStage { get; init; }

    public long? QueueUs { get; init; }

    public long? ComputeUs { get; init; }

    public long? BatchSize { get; init; }

    /// <summary>Every response parameter, as the server sent it.</summary>
    public IReadOnlyDictionary<string, JsonNode?> Parameters { get; init; } = new Dictionary<string, JsonNode?>();
}

/// <summary>The ranking for one sample of the batch sent.</summary>
/// <param name="Sample">The evaluation-set index with --sample; the position in the batch with --input.</param>
/// <param name="TrueClass">The class the evaluation set records, when known.</param>
/// <param name="TrueLabel">That class's label.</param>
/// <param name="Top">The most probable classes, most probable first.</param>
public sealed record SampleResult(int Sample, long? TrueClass, string? TrueLabel, IReadOnlyList<ClassScore> Top)
{
    /// <summary>The early-exit stage this sample left at, when the server says.</summary>
    public long? ExitStage { get; init; }

    /// <summary>Whether the most probable class is the true one; null when the truth is unknown.</summary>
    public bool? Correct => TrueClass is null || Top.Count == 0 ? null : Top[0].Index == TrueClass;
}

/// <summary>What --json writes when a command fails.</summary>
public sealed record ErrorReport(ErrorDetail Error);

/// <param name="Message">The same line the error stream gets.</param>
/// <param name="ExitCode">The process exit code.</param>
/// <param name="Status">The gRPC status (NOT_FOUND ...) when a call failed.</param>
public sealed record ErrorDetail(string Message, int ExitCode, string? Status);
