namespace EffServe.Core.Zoo;

// The YAML shape of a model manifest (zoo/<model>/model.yaml), as people write it. Property names
// map to snake_case keys. Loading turns a document into a checked ModelDefinition; docs/zoo.md
// describes every key.

public sealed class ManifestDocument
{
    public string? Name { get; set; }
    public string? Version { get; set; }
    public string? Task { get; set; }
    public string? Description { get; set; }
    public int? MaxBatchSize { get; set; }
    public List<TensorDocument>? Inputs { get; set; }
    public List<TensorDocument>? Outputs { get; set; }
    public List<string>? Labels { get; set; }
    public string? LabelsFile { get; set; }
    public EvaluationDocument? Evaluation { get; set; }
    public string? DefaultVariant { get; set; }
    public List<VariantDocument>? Variants { get; set; }
}

public sealed class TensorDocument
{
    public string? Name { get; set; }
    public string? Datatype { get; set; }
    public List<long>? Shape { get; set; }
}

public sealed class EvaluationDocument
{
    /// <summary>Input name → .npy file with that input for every sample (first dimension = sample).</summary>
    public Dictionary<string, string>? Inputs { get; set; }

    /// <summary>.npy file of integer class indices, one per sample.</summary>
    public string? Labels { get; set; }
}

public sealed class VariantDocument
{
    public string? Name { get; set; }
    public string? Kind { get; set; }
    public string? Provider { get; set; }
    public string? File { get; set; }
    public List<StageDocument>? Stages { get; set; }
    public double? ExitThreshold { get; set; }
    public ProfileDocument? Profile { get; set; }
}

public sealed class StageDocument
{
    public string? File { get; set; }
    public string? Exit { get; set; }
}

public sealed class ProfileDocument
{
    public string? MeasuredAt { get; set; }
    public string? Machine { get; set; }
    public double? Accuracy { get; set; }
    public List<LatencyDocument>? Latency { get; set; }
    public List<ThresholdDocument>? Thresholds { get; set; }
}

public sealed class LatencyDocument
{
    public int BatchSize { get; set; }
    public double P50Ms { get; set; }
    public double P95Ms { get; set; }
    public double ItemsPerSecond { get; set; }
}

public sealed class ThresholdDocument
{
    public double Threshold { get; set; }
    public double Accuracy { get; set; }
    public double MeanStages { get; set; }
    public double MeanLatencyMs { get; set; }
}
