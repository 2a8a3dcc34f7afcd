using EffServe.Cli.Connection;
using EffServe.Contracts.Inference;
using EffServe.Contracts.Zoo;
using Grpc.Core;
using ZooTensorSpec = EffServe.Contracts.Zoo.TensorSpec;

namespace EffServe.Cli.Listing;

/// <summary>
/// Lists the models of any OIP endpoint: EffServe's zoo listing when the endpoint has it, Triton's
/// repository index otherwise.
/// </summary>
public sealed class ModelCatalog
{
    private readonly CallInvoker _invoker;
    private readonly Func<CallOptions> _callOptions;

    /// <param name="invoker">The channel's call invoker.</param>
    /// <param name="callOptions">Options (deadline, cancellation) for each call, made fresh per call.</param>
    public ModelCatalog(CallInvoker invoker, Func<CallOptions> callOptions)
    {
        _invoker = invoker;
        _callOptions = callOptions;
    }

    /// <summary>
    /// Every model the endpoint serves. Tries <c>ZooService.ListModels</c>; when that is
    /// unimplemented, <c>RepositoryIndex</c> and <c>ModelMetadata</c> per model.
    /// </summary>
    /// <exception cref="CliException">The endpoint offers neither listing (exit code: unsupported).</exception>
    /// <exception cref="RpcException">Any other failure of the calls.</exception>
    public async Task<ModelListing> ListAsync()
    {
        try
        {
            var response = await new ZooService.ZooServiceClient(_invoker).ListModelsAsync(new ListModelsRequest(), _callOptions()).ConfigureAwait(false);
            return new ModelListing(ListingSources.Zoo, response.Models.Select(FromZoo).ToList());
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.Unimplemented)
        {
            // Not an EffServe endpoint (or an older one): fall through to Triton's repository index.
        }

        var inference = new GRPCInferenceService.GRPCInferenceServiceClient(_invoker);
        RepositoryIndexResponse index;
        try
        {
            index = await inference.RepositoryIndexAsync(new RepositoryIndexRequest(), _callOptions()).ConfigureAwait(false);
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.Unimplemented)
        {
            throw new CliException(
                ExitCodes.Unsupported,
                "the endpoint offers no model listing: neither effserve.v1.ZooService/ListModels nor inference.GRPCInferenceService/RepositoryIndex is implemented there.",
                e);
        }

        var models = new List<ModelInfo>(index.Models.Count);
        foreach (var entry in index.Models)
        {
            models.Add(await DescribeAsync(inference, entry).ConfigureAwait(false));
        }

        return new ModelListing(ListingSources.RepositoryIndex, models);
    }

    /// <summary>
    /// The zoo entry of one model, or null when the endpoint has no zoo listing or does not list
    /// that model. Never throws for an RPC failure: the caller can do without.
    /// </summary>
    public async Task<ModelInfo?> TryGetZooModelAsync(string name)
    {
        try
        {
            var response = await new ZooService.ZooServiceClient(_invoker).ListModelsAsync(new ListModelsRequest { Name = name }, _callOptions()).ConfigureAwait(false);
            var model = response.Models.FirstOrDefault(m => m.Name == name);
            return model is null ? null : FromZoo(model);
        }
        catch (RpcException)
        {
            return null;
        }
    }

    /// <summary>Maps the zoo's wire message to the CLI's view of a model.</summary>
    public static ModelInfo FromZoo(ZooModel model) => new(model.Name, model.Version, model.Ready, model.Inputs.Select(ToInfo).ToList(), model.Outputs.Select(ToInfo).ToList())
    {
        Task = Empty(model.Task),
        Description = Empty(model.Description),
        Labels = model.Labels.Count == 0 ? null : model.Labels.ToList(),
        DefaultVariant = Empty(model.DefaultVariant),
        MaxBatchSize = model.MaxBatchSize,
        EvalSamples = model.EvalSamples,
        Revision = Empty(model.Revision),
        Variants = model.Variants.Select(v => new VariantInfo(
            v.Name,
            v.Kind,
            v.Provider,
            v.State,
            Empty(v.Reason),
            v.Stages,
            v.Kind == "early-exit" || v.Stages > 1 ? v.ExitThreshold : null,
            v.Profile is { HasAccuracy: true } ? v.Profile.Accuracy : null)).ToList(),
    };

    private async Task<ModelInfo> DescribeAsync(GRPCInferenceService.GRPCInferenceServiceClient inference, RepositoryIndexResponse.Types.ModelIndex entry)
    {
        var ready = entry.State.Length > 0
            ? string.Equals(entry.State, "READY", StringComparison.OrdinalIgnoreCase)
            : await IsReadyAsync(inference, entry).ConfigureAwait(false);

        try
        {
            var metadata = await inference.ModelMetadataAsync(new ModelMetadataRequest { Name = entry.Name, Version = entry.Version }, _callOptions()).ConfigureAwait(false);
            var version = entry.Version.Length > 0 ? entry.Version : string.Join(",", metadata.Versions);
            return new ModelInfo(entry.Name, version, ready, metadata.Inputs.Select(ToInfo).ToList(), metadata.Outputs.Select(ToInfo).ToList())
            {
                State = Empty(entry.State),
                Reason = Empty(entry.Reason),
                Platform = Empty(metadata.Platform),
            };
        }
        catch (RpcException e) when (e.StatusCode is not StatusCode.Unavailable and not StatusCode.DeadlineExceeded and not StatusCode.Cancelled)
        {
            // An unloaded model has no metadata; list it with the reason rather than failing the listing.
            var reason = Empty(entry.Reason) ?? $"no metadata: {GrpcErrors.CanonicalName(e.StatusCode)} {e.Status.Detail}".TrimEnd();
            return new ModelInfo(entry.Name, entry.Version, ready, [], []) { State = Empty(entry.State), Reason = reason };
        }
    }

    private async Task<bool> IsReadyAsync(GRPCInferenceService.GRPCInferenceServiceClient inference, RepositoryIndexResponse.Types.ModelIndex entry)
    {
        try
        {
            var response = await inference.ModelReadyAsync(new ModelReadyRequest { Name = entry.Name, Version = entry.Version }, _callOptions()).ConfigureAwait(false);
            return response.Ready;
        }
        catch (RpcException e) when (e.StatusCode is StatusCode.Unimplemented or StatusCode.NotFound)
        {
            return false;
        }
    }

    private static TensorInfo ToInfo(ZooTensorSpec spec) => new(spec.Name, spec.Datatype, spec.Shape.ToList());

    private static TensorInfo ToInfo(ModelMetadataResponse.Types.TensorMetadata spec) => new(spec.Name, spec.Datatype, spec.Shape.ToList());

    private static string? Empty(string value) => value.Length == 0 ? null : value;
}
