using System.Diagnostics;
using System.Diagnostics.Metrics;
using EffServe.Gateway.Routing;
using EffServe.ServiceDefaults;

namespace EffServe.Gateway;

/// <summary>
/// The gateway's own meter: how long each call spent in the gateway, by gRPC method, model and
/// status; and how many replicas of each model are in rotation. The model tag is set once the
/// router has chosen one, so it stays bounded by the configured models (calls that name no served
/// model are tagged with an empty model).
/// </summary>
public sealed class GatewayMetrics : IDisposable
{
    public const string MeterName = "EffServe.Gateway";

    private const string ModelItem = "effserve.gateway.model";

    private readonly Meter _meter;
    private readonly Histogram<double> _duration;

    public GatewayMetrics(IMeterFactory meters, ModelRouter router)
    {
        _meter = meters.Create(MeterName);
        _meter.CreateObservableUpDownCounter("effserve.gateway.replicas", () => ObserveReplicas(router), "{replica}",
            "Replicas of each model in rotation now (healthy: answering probes and not penalised), beside those configured (state: in_rotation, out).");
        _duration = _meter.CreateHistogram("effserve.gateway.request.duration", "s",
            "Time from a call's headers reaching the gateway to its response ending, by method, model and gRPC status.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] });
    }

    internal bool Enabled => _duration.Enabled;

    /// <summary>Tags the call with the model it was routed to.</summary>
    public static void SetModel(HttpContext context, string model) => context.Items[ModelItem] = model;

    internal void Record(HttpContext context, long started)
    {
        var path = context.Request.Path.Value ?? "";
        var slash = path.LastIndexOf('/');
        var method = slash >= 0 ? path[(slash + 1)..] : path;
        var status = GrpcCallStatus.Read(context) ?? "none";
        _duration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds, new TagList
        {
            { "rpc.method", GrpcMethods.IsKnownMethodName(method) ? method : "other" },
            { "effserve.model", context.Items.TryGetValue(ModelItem, out var model) ? model as string ?? "" : "" },
            { "rpc.grpc.status_code", status },
        });
    }

    public void Dispose() => _meter.Dispose();

    private static IEnumerable<Measurement<int>> ObserveReplicas(ModelRouter router)
    {
        foreach (var replicas in router.Models)
        {
            var healthy = 0;
            var all = replicas.Destinations;
            foreach (var destination in all)
            {
                healthy += destination.IsHealthy ? 1 : 0;
            }

            var model = new KeyValuePair<string, object?>("effserve.model", replicas.Model);
            yield return new Measurement<int>(healthy, model, new KeyValuePair<string, object?>("state", "in_rotation"));
            yield return new Measurement<int>(all.Count - healthy, model, new KeyValuePair<string, object?>("state", "out"));
        }
    }
}

/// <summary>Records <see cref="GatewayMetrics"/> for every call, when something reads the meter.</summary>
internal sealed class GatewayMetricsMiddleware(RequestDelegate next, GatewayMetrics metrics)
{
    public async Task InvokeAsync(HttpContext context)
    {
        if (!metrics.Enabled)
        {
            await next(context).ConfigureAwait(false);
            return;
        }

        var started = Stopwatch.GetTimestamp();
        try
        {
            await next(context).ConfigureAwait(false);
        }
        finally
        {
            metrics.Record(context, started);
        }
    }
}
