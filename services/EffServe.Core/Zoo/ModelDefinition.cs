using EffServe.Core.Tensors;

namespace EffServe.Core.Zoo;

public enum VariantKind
{
    Fp32,
    Int8,
    Fp16,
    EarlyExit,
}

public enum ExecutionProvider
{
    Cpu,
    Cuda,
    TensorRt,
}

/// <summary>A model of the zoo, checked against its ONNX files.</summary>
public sealed record ModelDefinition(
    string Name,
    string Version,
    string Task,
    string Description,
    string Directory,
    IReadOnlyList<TensorSpec> Inputs,
    IReadOnlyList<TensorSpec> Outputs,
    IReadOnlyList<string> Labels,
    int MaxBatchSize,
    EvaluationSetDefinition? Evaluation,
    IReadOnlyList<VariantDefinition> Variants,
    string DefaultVariant,
    string Revision)
{
    /// <summary>True when the first dimension of every input and output is the batch dimension.</summary>
    public bool HasBatchDimension => MaxBatchSize > 0;

    public VariantDefinition? FindVariant(string name) => Variants.FirstOrDefault(v => v.Name == name);
}

/// <summary>
/// One way to compute a model. Single-file variants have one stage without an exit; an
/// early-exit variant has two or more stages, each naming its exit output.
/// </summary>
public sealed record VariantDefinition(
    string Name,
    VariantKind Kind,
    ExecutionProvider Provider,
    IReadOnlyList<StageDefinition> Stages,
    double ExitThreshold,
    VariantProfile? Profile);

/// <param name="Path">Absolute path of the ONNX file.</param>
/// <param name="RelativePath">The path as the manifest names it, relative to the model's folder.</param>
/// <param name="ExitOutput">For early exit: the stage output holding the exit head's logits.</param>
public sealed record StageDefinition(string Path, string RelativePath, string? ExitOutput);

/// <param name="InputFiles">Model input name → absolute path of its .npy file.</param>
/// <param name="LabelsFile">Absolute path of the .npy file of class indices.</param>
/// <param name="Samples">Number of samples in the set.</param>
public sealed record EvaluationSetDefinition(IReadOnlyDictionary<string, string> InputFiles, string LabelsFile, long Samples);

/// <summary>What `effserve zoo profile` measured for a variant on one machine.</summary>
public sealed record VariantProfile(
    string? MeasuredAt,
    string? Machine,
    double? Accuracy,
    IReadOnlyList<LatencyPoint> Latency,
    IReadOnlyList<ThresholdPoint> Thresholds);

public sealed record LatencyPoint(int BatchSize, double P50Ms, double P95Ms, double ItemsPerSecond);

public sealed record ThresholdPoint(double Threshold, double Accuracy, double MeanStages, double MeanLatencyMs);

public static class VariantNames
{
    public static string ToManifestName(this VariantKind kind) => kind switch
    {
        VariantKind.Fp32 => "fp32",
        VariantKind.Int8 => "int8",
        VariantKind.Fp16 => "fp16",
        VariantKind.EarlyExit => "early-exit",
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    public static string ToManifestName(this ExecutionProvider provider) => provider switch
    {
        ExecutionProvider.Cpu => "cpu",
        ExecutionProvider.Cuda => "cuda",
        ExecutionProvider.TensorRt => "tensorrt",
        _ => throw new ArgumentOutOfRangeException(nameof(provider)),
    };

    public static bool TryParseKind(string? text, out VariantKind kind)
    {
        foreach (var k in Enum.GetValues<VariantKind>())
        {
            if (k.ToManifestName() == text)
            {
                kind = k;
                return true;
            }
        }

        kind = default;
        return false;
    }

    public static bool TryParseProvider(string? text, out ExecutionProvider provider)
    {
        foreach (var p in Enum.GetValues<ExecutionProvider>())
        {
            if (p.ToManifestName() == text)
            {
                provider = p;
                return true;
            }
        }

        provider = default;
        return false;
    }
}
