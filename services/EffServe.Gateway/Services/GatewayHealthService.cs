using EffServe.Gateway.Routing;
using Grpc.Core;
using Grpc.Health.V1;

namespace EffServe.Gateway.Services;

/// <summary>
/// grpc.health.v1 of the gateway, read from the rotation at the moment of the call: service ""
/// serves while every model has a replica in rotation, a model's name while that model has one
/// (<see cref="ModelRouter.IsServing"/>, the same answer as ServerReady). Check answers NOT_FOUND
/// for a name that is not a model served here; Watch sends the status at once and again whenever it
/// changes (SERVICE_UNKNOWN for such a name), until the caller leaves or the gateway stops.
/// </summary>
public sealed class GatewayHealthService : Health.HealthBase
{
    /// <summary>How often a Watch looks at the rotation: a few reads of replica state, no I/O.</summary>
    internal static readonly TimeSpan WatchPollInterval = TimeSpan.FromMilliseconds(100);

    private readonly ModelRouter _router;
    private readonly TimeProvider _time;
    private readonly CancellationToken _stopping;

    public GatewayHealthService(ModelRouter router, TimeProvider time, IHostApplicationLifetime lifetime)
    {
        _router = router;
        _time = time;
        _stopping = lifetime.ApplicationStopping;
    }

    public override Task<HealthCheckResponse> Check(HealthCheckRequest request, ServerCallContext context)
    {
        var status = StatusOf(request.Service);
        if (status == HealthCheckResponse.Types.ServingStatus.ServiceUnknown)
        {
            throw new RpcException(new Status(StatusCode.NotFound, $"'{request.Service}' is not a model served here; ask for \"\" (the gateway) or one of: {string.Join(", ", _router.Names)}."));
        }

        return Task.FromResult(new HealthCheckResponse { Status = status });
    }

    public override async Task Watch(HealthCheckRequest request, IServerStreamWriter<HealthCheckResponse> responseStream, ServerCallContext context)
    {
        using var watching = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, _stopping);
        HealthCheckResponse.Types.ServingStatus? sent = null;
        try
        {
            while (!watching.IsCancellationRequested)
            {
                var status = StatusOf(request.Service);
                if (status != sent)
                {
                    await responseStream.WriteAsync(new HealthCheckResponse { Status = status }, watching.Token).ConfigureAwait(false);
                    sent = status;
                }

                await Task.Delay(WatchPollInterval, _time, watching.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (watching.IsCancellationRequested)
        {
            // the caller left, or the gateway stops: the stream ends with OK
        }
    }

    private HealthCheckResponse.Types.ServingStatus StatusOf(string service) => _router.IsServing(service) switch
    {
        true => HealthCheckResponse.Types.ServingStatus.Serving,
        false => HealthCheckResponse.Types.ServingStatus.NotServing,
        null => HealthCheckResponse.Types.ServingStatus.ServiceUnknown,
    };
}
