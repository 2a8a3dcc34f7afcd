using System.Reflection;
using EffServe.Contracts.Inference;
using EffServe.Core.Statistics;
using EffServe.Inference.Caching;
using EffServe.Inference.Rpc;
using EffServe.Inference.Serving;
using Grpc.Core;

namespace EffServe.Inference.Services;

/// <summary>The Open Inference Protocol v2 gRPC service over this process's models.</summary>
public sealed class InferenceGrpcService : GRPCInferenceService.GRPCInferenceServiceBase
{
    /// <summary>Requests of one stream in flight at once; reading pauses beyond it.</summary>
    private const int StreamConcurrency = 32;

    private static readonly string s_version = typeof(InferenceGrpcService).Assembly
        .GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0.0.0";

    private readonly ModelRepository _models;
    private readonly InferenceEngine _engine;
    private readonly ResponseCache _cache;
    private readonly Microsoft.Extensions.Options.IOptions<InferenceServiceOptions> _options;

    public InferenceGrpcService(ModelRepository models, InferenceEngine engine, ResponseCache cache, Microsoft.Extensions.Options.IOptions<InferenceServiceOptions> options)
    {
        _models = models;
        _engine = engine;
        _cache = cache;
        _options = options;
    }

    public override Task<ServerLiveResponse> ServerLive(ServerLiveRequest request, ServerCallContext context) =>
        Task.FromResult(new ServerLiveResponse { Live = true });

    public override Task<ServerReadyResponse> ServerReady(ServerReadyRequest request, ServerCallContext context) =>
        Task.FromResult(new ServerReadyResponse { Ready = _models.IsReady });

    public override Task<ModelReadyResponse> ModelReady(ModelReadyRequest request, ServerCallContext context)
    {
        var model = _engine.Resolve(request.Name, request.Version);
        return Task.FromResult(new ModelReadyResponse { Ready = model.Runtime.IsReady });
    }

    public override Task<ServerMetadataResponse> ServerMetadata(ServerMetadataRequest request, ServerCallContext context)
    {
        var response = new ServerMetadataResponse { Name = _options.Value.ServerName, Version = s_version };
        response.Extensions.Add(["parameters", "statistics", "effserve"]);
        return Task.FromResult(response);
    }

    public override Task<ModelMetadataResponse> ModelMetadata(ModelMetadataRequest request, ServerCallContext context)
    {
        var model = _engine.Resolve(request.Name, request.Version).Definition;
        var response = new ModelMetadataResponse { Name = model.Name, Platform = "onnx_onnxv1" };
        response.Versions.Add(model.Version);
        response.Inputs.Add(model.Inputs.Select(ToMetadata));
        response.Outputs.Add(model.Outputs.Select(ToMetadata));
        return Task.FromResult(response);
    }

    public override Task<ModelConfigResponse> ModelConfig(ModelConfigRequest request, ServerCallContext context)
    {
        var model = _engine.Resolve(request.Name, request.Version);
        var loaded = model.Runtime.Variants.Where(v => v.Loaded).Select(v => v.Definition.Name);
        var (limit, minGain) = _engine.BatchingLimits(model.Definition);
        return Task.FromResult(new ModelConfigResponse { Config = ModelConfigs.Describe(model.Definition, model.Runtime.DefaultVariant, loaded, limit, minGain) });
    }

    public override Task<ModelInferResponse> ModelInfer(ModelInferRequest request, ServerCallContext context) =>
        _cache.InferAsync(request, context.Deadline, context.CancellationToken);

    public override async Task ModelStreamInfer(IAsyncStreamReader<ModelInferRequest> requestStream, IServerStreamWriter<ModelStreamInferResponse> responseStream, ServerCallContext context)
    {
        using var writeLock = new SemaphoreSlim(1, 1);
        using var inFlight = new SemaphoreSlim(StreamConcurrency, StreamConcurrency);
        var pending = new List<Task>();
        var token = context.CancellationToken;
        await foreach (var request in requestStream.ReadAllAsync(token).ConfigureAwait(false))
        {
            await inFlight.WaitAsync(token).ConfigureAwait(false);
            pending.RemoveAll(t => t.IsCompleted);
            pending.Add(AnswerAsync(request));
        }

        await Task.WhenAll(pending).ConfigureAwait(false);

        // Each request answers on its own, in completion order; a failed one answers with its error
        // and the stream goes on.
        async Task AnswerAsync(ModelInferRequest request)
        {
            ModelStreamInferResponse answer;
            try
            {
                answer = new ModelStreamInferResponse { InferResponse = await _cache.InferAsync(request, context.Deadline, token).ConfigureAwait(false) };
            }
            catch (Exception e) when (e is RpcException or OperationCanceledException)
            {
                var status = e is RpcException rpc ? rpc.Status : new Status(StatusCode.Cancelled, "The request was cancelled.");
                answer = new ModelStreamInferResponse
                {
                    ErrorMessage = StatusDetails.Cap($"{status.StatusCode}: {status.Detail}"),
                    InferResponse = new ModelInferResponse { ModelName = request.ModelName, ModelVersion = request.ModelVersion, Id = request.Id },
                };
            }
            finally
            {
                inFlight.Release();
            }

            await writeLock.WaitAsync(token).ConfigureAwait(false);
            try
            {
                await responseStream.WriteAsync(answer, token).ConfigureAwait(false);
            }
            finally
            {
                writeLock.Release();
            }
        }
    }

    public override Task<ModelStatisticsResponse> ModelStatistics(ModelStatisticsRequest request, ServerCallContext context)
    {
        IEnumerable<ServedModel> models = string.IsNullOrEmpty(request.Name)
            ? _models.Models.OrderBy(m => m.Definition.Name, StringComparer.Ordinal)
            : [_engine.Resolve(request.Name, request.Version)];
        var response = new ModelStatisticsResponse();
        foreach (var model in models)
        {
            var s = model.Statistics;
            var stats = new Contracts.Inference.ModelStatistics
            {
                Name = model.Definition.Name,
                Version = model.Definition.Version,
                LastInference = (ulong)s.LastInferenceMs,
                InferenceCount = (ulong)s.InferenceCount,
                ExecutionCount = (ulong)s.ExecutionCount,
                InferenceStats = new InferStatistics
                {
                    Success = ToDuration(s.Success),
                    Fail = ToDuration(s.Fail),
                    Queue = ToDuration(s.Queue),
                    ComputeInput = ToDuration(s.ComputeInput),
                    ComputeInfer = ToDuration(s.ComputeInfer),
                    ComputeOutput = ToDuration(s.ComputeOutput),
                    CacheHit = ToDuration(s.CacheHit),
                    CacheMiss = ToDuration(s.CacheMiss),
                },
            };
            stats.BatchStats.Add(s.Batches.Select(b => new InferBatchStatistics
            {
                BatchSize = (ulong)b.BatchSize,
                ComputeInput = ToDuration(b.ComputeInput),
                ComputeInfer = ToDuration(b.ComputeInfer),
                ComputeOutput = ToDuration(b.ComputeOutput),
            }));
            response.ModelStats.Add(stats);
        }

        return Task.FromResult(response);
    }

    public override Task<RepositoryIndexResponse> RepositoryIndex(RepositoryIndexRequest request, ServerCallContext context)
    {
        var response = new RepositoryIndexResponse();
        foreach (var model in _models.Models.OrderBy(m => m.Definition.Name, StringComparer.Ordinal))
        {
            var ready = model.Runtime.IsReady;
            if (request.Ready && !ready)
            {
                continue;
            }

            response.Models.Add(new RepositoryIndexResponse.Types.ModelIndex
            {
                Name = model.Definition.Name,
                Version = model.Definition.Version,
                State = ready ? "READY" : "UNAVAILABLE",
                Reason = ready ? "" : "no variant of the model can run on this machine",
            });
        }

        return Task.FromResult(response);
    }

    public override Task<RepositoryModelLoadResponse> RepositoryModelLoad(RepositoryModelLoadRequest request, ServerCallContext context) =>
        throw new RpcException(new Status(StatusCode.Unimplemented, "Loading models at run time is not supported yet; EffServe loads its zoo at start-up (restart the service to change it)."));

    public override Task<RepositoryModelUnloadResponse> RepositoryModelUnload(RepositoryModelUnloadRequest request, ServerCallContext context) =>
        throw new RpcException(new Status(StatusCode.Unimplemented, "Unloading models at run time is not supported yet; EffServe loads its zoo at start-up (restart the service to change it)."));

    private static ModelMetadataResponse.Types.TensorMetadata ToMetadata(Core.Tensors.TensorSpec spec)
    {
        var metadata = new ModelMetadataResponse.Types.TensorMetadata { Name = spec.Name, Datatype = Core.Tensors.DataTypes.ToWireName(spec.DataType) };
        metadata.Shape.Add(spec.Shape);
        return metadata;
    }

    private static StatisticDuration ToDuration(DurationCounter counter) =>
        new() { Count = (ulong)counter.Count, Ns = (ulong)counter.Nanoseconds };
}
