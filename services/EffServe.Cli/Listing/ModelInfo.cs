namespace EffServe.Cli.Listing;

/// <summary>Where a model listing came from.</summary>
public static class ListingSources
{
    /// <summary>EffServe's own <c>effserve.v1.ZooService/ListModels</c>: variants, labels and profiles.</summary>
    public const string Zoo = "zoo";

    /// <summary>Triton's <c>RepositoryIndex</c> with <c>ModelMetadata</c> per model: names, versions and tensors.</summary>
    public const string RepositoryIndex = "repository-index";
}

/// <summary>One tensor of a model's signature; -1 marks a variable dimension.</summary>
public sealed record TensorInfo(string Name, string Datatype, IReadOnlyList<long> Shape);

/// <summary>One variant of a model as the zoo listing reports it.</summary>
public sealed record VariantInfo(
    string Name,
    string Kind,
    string Provider,
    string State,
    string? Reason,
    int Stages,
    double? ExitThreshold,
    double? Accuracy);

/// <summary>
/// A model as the CLI shows it, whichever way the endpoint listed it. Fields the source does not
/// know stay null (a Triton endpoint has no variants or labels).
/// </summary>
public sealed record ModelInfo(
    string Name,
    string Version,
    bool Ready,
    IReadOnlyList<TensorInfo> Inputs,
    IReadOnlyList<TensorInfo> Outputs)
{
    public string? State { get; init; }

    public string? Reason { get; init; }

    public string? Platform { get; init; }

    public string? Task { get; init; }

    public string? Description { get; init; }

    public IReadOnlyList<string>? Labels { get; init; }

    public string? DefaultVariant { get; init; }

    public long? MaxBatchSize { get; init; }

    public long? EvalSamples { get; init; }

    public string? Revision { get; init; }

    public IReadOnlyList<VariantInfo>? Variants { get; init; }
}

/// <summary>The models an endpoint serves, and which RPCs told us.</summary>
public sealed record ModelListing(string Source, IReadOnlyList<ModelInfo> Models);
