namespace EffServe.Core.Protocol;

/// <summary>Names of the request and response parameters EffServe reads and writes (docs/protocol.md).</summary>
public static class ParameterNames
{
    // Request
    public const string Variant = "effserve.variant";
    public const string ExitThreshold = "effserve.exit_threshold";
    public const string SloMs = "effserve.slo_ms";
    public const string MinAccuracy = "effserve.min_accuracy";
    public const string MaxCostUsd = "effserve.max_cost_usd";
    public const string Cache = "effserve.cache";
    public const string Priority = "priority";
    public const string Timeout = "timeout";

    // Response (effserve.variant and effserve.exit_threshold also answer)
    public const string ExitStage = "effserve.exit_stage";
    public const string ExitStages = "effserve.exit_stages";
    public const string QueueUs = "effserve.queue_us";
    public const string ComputeUs = "effserve.compute_us";
    public const string BatchSize = "effserve.batch_size";
    public const string Policy = "effserve.policy";

    /// <summary>The prefix of EffServe's own parameters; an unknown key with it is refused.</summary>
    public const string Prefix = "effserve.";
}
