using System.Reflection;
using EffServe.Contracts.Inference;
using EffServe.Gateway.Forwarding;
using EffServe.Gateway.Routing;
using Grpc.Core;

namespace EffServe.Gateway.Services;

/// <summary>
/// The server-level calls of the protocol, answered by the gateway itself: liveness, readiness
/// (every model has a healthy replica), metadata, and the repository index gathered from the
/// replicas. Model-level calls never reach this class: they are forwarded to a replica.
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
        Task.FromResult(new ServerReadyResponse { Ready = _router.Models.All(m => m.HasHealthy) });

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

    /// <summary>Asks healthy replicas in turn until one answers; null when none does.</summary>
    internal async Task<T?> AskOneAsync<T>(ReplicaSet replicas, Func<Grpc.Net.Client.GrpcChannel, Task<T?>> ask)
        where T : class
    {
        foreach (var destination in replicas.Destinations.Where(d => d.IsHealthy).OrderBy(d => d.Outstanding))
        {
            try
            {
                return await ask(destination.Channel(_backend.Handler)).ConfigureAwait(false);
            }
            catch (RpcException e) when (e.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded or StatusCode.Internal or StatusCode.Unknown)
            {
                // try the next replica
            }
        }

        return null;
    }
}
