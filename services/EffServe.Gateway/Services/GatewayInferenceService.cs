using System.Reflection;
using EffServe.Contracts.Inference;
using EffServe.Gateway.Forwarding;
using EffServe.Gateway.Routing;
using Grpc.Core;

namespace EffServe.Gateway.Services;

/// <summary>
/// The server-level calls of the protocol, answered by the gateway itself: liveness, readiness
/// (every model has a replica in rotation, as the gateway's grpc.health.v1 says), metadata, and
/// the repository index gathered from the replicas. Model-level calls never reach this class: they
/// are forwarded to a replica.
/// </summary>
public sealed class GatewayInferenceService : GRPCInferenceService.GRPCInferenceServiceBase
{
    private static readonly string s_version = typeof(GatewayInferenceService).Assembly
        .GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0.0.0";

    private readonly ModelRouter _router;
    private readonly BackendClient _backend;

    public GatewayInferenceService(ModelRouter router, BackendClient backend)
    {
        _router = router;
        _backend = backend;
    }

    public override Task<ServerLiveResponse> ServerLive(ServerLiveRequest request, ServerCallContext context) =>
        Task.FromResult(new ServerLiveResponse { Live = true });

    public override Task<ServerReadyResponse> ServerReady(ServerReadyRequest request, ServerCallContext context) =>
        Task.FromResult(new ServerReadyResponse { Ready = _router.IsServing("") == true });

    public override Task<ServerMetadataResponse> ServerMetadata(ServerMetadataRequest request, ServerCallContext context)
    {
        var response = new ServerMetadataResponse { Name = "effserve", Version = s_version };
        response.Extensions.Add(["parameters", "statistics", "effserve", "effserve-gateway"]);
        return Task.FromResult(response);
    }

    public override async Task<RepositoryIndexResponse> RepositoryIndex(RepositoryIndexRequest request, ServerCallContext context)
    {
        var response = new RepositoryIndexResponse();
        foreach (var replicas in _router.Models.OrderBy(m => m.Model, StringComparer.Ordinal))
        {
            var entry = await AskOneAsync(replicas, async channel =>
            {
                var index = await new GRPCInferenceService.GRPCInferenceServiceClient(channel)
                    .RepositoryIndexAsync(new RepositoryIndexRequest { Ready = request.Ready }, deadline: context.Deadline, cancellationToken: context.CancellationToken);
                return index.Models.FirstOrDefault(m => m.Name == replicas.Model);
            }).ConfigureAwait(false);

            entry ??= new RepositoryIndexResponse.Types.ModelIndex { Name = replicas.Model, State = "UNAVAILABLE", Reason = "no healthy replica answered" };
            if (!request.Ready || entry.State == "READY")
            {
                response.Models.Add(entry);
            }
        }

        return response;
    }

    /// <summary>
    /// Statistics of a model (or of every model) summed over all its healthy replicas, so the
    /// counts describe the model as the gateway serves it, not one replica.
    /// </summary>
    public override async Task<ModelStatisticsResponse> ModelStatistics(ModelStatisticsRequest request, ServerCallContext context)
    {
        IEnumerable<ReplicaSet> models = _router.Models.OrderBy(m => m.Model, StringComparer.Ordinal);
        if (request.Name.Length > 0)
        {
            if (!_router.TryGet(request.Name, out var one))
            {
                throw new RpcException(new Status(StatusCode.NotFound, $"Model '{request.Name}' is not served here; models served here: {string.Join(", ", _router.Names)}."));
            }

            models = [one];
        }

        var response = new ModelStatisticsResponse();
        foreach (var replicas in models)
        {
            var answers = await AskAllAsync(replicas, async channel =>
            {
                var reply = await new GRPCInferenceService.GRPCInferenceServiceClient(channel)
                    .ModelStatisticsAsync(new ModelStatisticsRequest { Name = replicas.Model, Version = request.Version }, deadline: context.Deadline, cancellationToken: context.CancellationToken);
                return reply.ModelStats.FirstOrDefault();
            }).ConfigureAwait(false);

            var sum = answers.Aggregate((ModelStatistics?)null, StatisticsSum.Add);
            if (sum is null)
            {
                throw new RpcException(new Status(StatusCode.Unavailable, $"No healthy replica of model '{replicas.Model}' answered; retry later."));
            }

            response.ModelStats.Add(sum);
        }

        return response;
    }

    /// <summary>
    /// Asks every healthy replica at once; the answers of those that answered (a replica that is
    /// unavailable or too slow for the caller's deadline is left out).
    /// </summary>
    internal async Task<IReadOnlyList<T>> AskAllAsync<T>(ReplicaSet replicas, Func<Grpc.Net.Client.GrpcChannel, Task<T?>> ask)
        where T : class
    {
        var answers = await Task.WhenAll(replicas.Destinations.Where(d => d.IsHealthy).Select(async d =>
        {
            try
            {
                return await ask(d.Channel(_backend.ChannelHandler)).ConfigureAwait(false);
            }
            catch (RpcException e) when (e.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded)
            {
                return null;
            }
        })).ConfigureAwait(false);
        return answers.OfType<T>().ToList();
    }

    /// <summary>Asks healthy replicas in turn until one answers; null when none does.</summary>
    internal async Task<T?> AskOneAsync<T>(ReplicaSet replicas, Func<Grpc.Net.Client.GrpcChannel, Task<T?>> ask)
        where T : class
    {
        foreach (var destination in replicas.Destinations.Where(d => d.IsHealthy).OrderBy(d => d.Outstanding))
        {
            try
            {
                return await ask(destination.Channel(_backend.ChannelHandler)).ConfigureAwait(false);
            }
            catch (RpcException e) when (e.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded or StatusCode.Internal or StatusCode.Unknown)
            {
                // try the next replica
            }
        }

        return null;
    }
}

/// <summary>Adds up the statistics of several replicas of one model.</summary>
internal static class StatisticsSum
{
    public static ModelStatistics Add(ModelStatistics? total, ModelStatistics next)
    {
        if (total is null)
        {
            return next.Clone();
        }

        total.LastInference = Math.Max(total.LastInference, next.LastInference);
        total.InferenceCount += next.InferenceCount;
        total.ExecutionCount += next.ExecutionCount;
        var a = total.InferenceStats ??= new InferStatistics();
        var b = next.InferenceStats ?? new InferStatistics();
        a.Success = Add(a.Success, b.Success);
        a.Fail = Add(a.Fail, b.Fail);
        a.Queue = Add(a.Queue, b.Queue);
        a.ComputeInput = Add(a.ComputeInput, b.ComputeInput);
        a.ComputeInfer = Add(a.ComputeInfer, b.ComputeInfer);
        a.ComputeOutput = Add(a.ComputeOutput, b.ComputeOutput);
        a.CacheHit = Add(a.CacheHit, b.CacheHit);
        a.CacheMiss = Add(a.CacheMiss, b.CacheMiss);
        foreach (var batch in next.BatchStats)
        {
            var mine = total.BatchStats.FirstOrDefault(x => x.BatchSize == batch.BatchSize);
            if (mine is null)
            {
                total.BatchStats.Add(batch.Clone());
                continue;
            }

            mine.ComputeInput = Add(mine.ComputeInput, batch.ComputeInput);
            mine.ComputeInfer = Add(mine.ComputeInfer, batch.ComputeInfer);
            mine.ComputeOutput = Add(mine.ComputeOutput, batch.ComputeOutput);
        }

        return total;
    }

    private static StatisticDuration Add(StatisticDuration? a, StatisticDuration? b) => new()
    {
        Count = (a?.Count ?? 0) + (b?.Count ?? 0),
        Ns = (a?.Ns ?? 0) + (b?.Ns ?? 0),
    };
}
