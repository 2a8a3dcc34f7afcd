using System.Diagnostics;
using System.Diagnostics.Metrics;
using EffServe.Gateway.Routing;
using Microsoft.AspNetCore.Http.Features;

namespace EffServe.Gateway;

/// <summary>
/// The gateway's own meter: how long each call spent in the gateway, by gRPC method, model and
/// status. The model tag is set once the router has chosen one, so it stays bounded by the
/// configured models (calls that name no served model are tagged with an empty model).
/// </summary>
public sealed class GatewayMetrics : IDisposable
{
    public const string MeterName = "EffServe.Gateway";

    private const string ModelItem = "effserve.gateway.model";

    private readonly Meter _meter;
    private readonly Histogram<double> _duration;

    public GatewayMetrics(IMeterFactory meters)
    {
        _meter = meters.Create(MeterName);
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
        var status = context.Response.Headers["grpc-status"].ToString();
        if (status.Length == 0 && context.Features.Get<IHttpResponseTrailersFeature>()?.Trailers is { } trailers)
        {
            status = trailers["grpc-status"].ToString();
        }

        _duration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds, new TagList
        {
            { "rpc.method", GrpcMethods.IsKnownMethodName(method) ? method : "other" },
            { "effserve.model", context.Items.TryGetValue(ModelItem, out var model) ? model as string ?? "" : "" },
            { "rpc.grpc.status_code", status.Length is > 0 and <= 2 ? status : "none" },
        });
    }

    public void Dispose() => _meter.Dispose();
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
