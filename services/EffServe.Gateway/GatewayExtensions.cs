using EffServe.Gateway.Door;
using EffServe.Gateway.Forwarding;
using EffServe.Gateway.Routing;
using EffServe.Gateway.Services;
using EffServe.ServiceDefaults;
using Grpc.Core;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace EffServe.Gateway;

public static class GatewayExtensions
{
    /// <summary>
    /// Registers the gateway: the service defaults (OpenTelemetry: its server spans, YARP's forwarder
    /// span and the call to the replica, which carries the W3C trace context on), options, routing,
    /// the door, forwarding, health, reflection and Kestrel's limits.
    /// </summary>
    public static WebApplicationBuilder AddGateway(this WebApplicationBuilder builder)
    {
        builder.AddServiceDefaults("effserve-gateway", [GatewayMetrics.MeterName]);
        var services = builder.Services;
        services.AddOptions<GatewayOptions>().BindConfiguration(GatewayOptions.SectionName).ValidateOnStart();
        services.AddSingleton<IValidateOptions<GatewayOptions>, GatewayOptionsValidator>();
        services.AddHttpForwarder();
        services.AddSingleton<BackendClient>();
        services.AddSingleton<ModelRouter>();
        services.AddSingleton<CallRouter>();
        services.AddSingleton<GatewayDoor>();
        services.AddSingleton<ModelCallForwarder>();
        services.AddSingleton<GatewayMetrics>();
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton<GatewayHealthService>();
        services.AddSingleton<GatewayInferenceService>();
        services.AddSingleton<ReplicaWatcher>();
        services.AddHostedService(sp => sp.GetRequiredService<ReplicaWatcher>());
        services.AddGrpc(o =>
        {
            // The gateway's own services take small messages only; model calls never reach them.
            o.MaxReceiveMessageSize = 1024 * 1024;
            o.MaxSendMessageSize = 16 * 1024 * 1024;
        });
        services.AddGrpcReflection();

        // The forwarding path logs nothing per request: YARP's per-request information lines cost
        // more than the hop itself.
        builder.Logging.AddFilter("Yarp", LogLevel.Warning);

        // YARP warns on every call that it cannot lift the body-size limit once the body was read;
        // the gateway reads unary bodies itself and enforces its own limit, so that line is noise.
        builder.Logging.AddFilter("Yarp.ReverseProxy.Forwarder.HttpForwarder", LogLevel.Error);
        builder.WebHost.ConfigureKestrel(k =>
        {
            ConfigureLimits(k.Limits);
            k.ConfigureEndpointDefaults(e =>
            {
                e.Protocols = HttpProtocols.Http2;
                e.Use(next => ConnectionBudgets.Install(next, e.ApplicationServices.GetRequiredService<IOptions<GatewayOptions>>().Value.MaxBufferedRequestBytesPerConnection));
            });
        });

        return builder;
    }

    /// <summary>
    /// Kestrel's limits for a gateway that faces clients it does not trust, each chosen on purpose
    /// (docs/gateway.md lists them). HTTP/2's own protections (stream-reset, SETTINGS, PING and
    /// CONTINUATION floods, flow control, stream-id rules) are Kestrel's and stay on.
    /// </summary>
    internal static void ConfigureLimits(KestrelServerLimits limits)
    {
        limits.MaxRequestBodySize = null; // the gateway enforces MaxRequestBytes itself, with a gRPC status
        limits.MaxRequestHeadersTotalSize = 32 * 1024;
        limits.MaxRequestHeaderCount = 100;
        limits.RequestHeadersTimeout = TimeSpan.FromSeconds(10);
        limits.KeepAliveTimeout = TimeSpan.FromSeconds(130);
        limits.MinRequestBodyDataRate = new MinDataRate(bytesPerSecond: 240, gracePeriod: TimeSpan.FromSeconds(5));
        limits.MinResponseDataRate = new MinDataRate(bytesPerSecond: 240, gracePeriod: TimeSpan.FromSeconds(5));
        limits.MaxResponseBufferSize = 64 * 1024;
        limits.Http2.MaxStreamsPerConnection = 100;
        limits.Http2.HeaderTableSize = 4096;
        limits.Http2.MaxFrameSize = 16 * 1024;
        limits.Http2.MaxRequestHeaderFieldSize = 16 * 1024;
        limits.Http2.InitialConnectionWindowSize = 1024 * 1024;
        limits.Http2.InitialStreamWindowSize = 768 * 1024;
        limits.Http2.KeepAlivePingDelay = TimeSpan.FromSeconds(30);
        limits.Http2.KeepAlivePingTimeout = TimeSpan.FromSeconds(20);
    }

    public static WebApplication MapGateway(this WebApplication app)
    {
        var door = app.Services.GetRequiredService<GatewayDoor>();
        app.UseMiddleware<GatewayMetricsMiddleware>();
        app.Use(async (context, next) =>
        {
            // Methods are matched as gRPC methods: the exact path of one the gateway serves. Anything
            // else (a trailing '/', a dot segment, another case) is answered here, before routing
            // or the door could read it as something else.
            if (!GrpcMethods.TryGet(context.Request.Path.Value, out var method))
            {
                await GrpcResponses.WriteErrorAsync(context, StatusCode.Unimplemented, $"The gateway serves no gRPC method at '{Printable(context.Request.Path.Value)}'.").ConfigureAwait(false);
                return;
            }

            if (!HttpMethods.IsPost(context.Request.Method) || !(context.Request.ContentType ?? "").StartsWith("application/grpc", StringComparison.Ordinal))
            {
                context.Response.StatusCode = StatusCodes.Status415UnsupportedMediaType;
                return;
            }

            if (method.Route == MethodRoute.Gateway && method.Guarded && !await door.AdmitAsync(context).ConfigureAwait(false))
            {
                return;
            }

            await next(context).ConfigureAwait(false);
        });

        app.MapGrpcService<GatewayInferenceService>();
        app.MapGrpcService<GatewayZooService>();
        app.MapGrpcService<GatewayJobService>();
        app.MapGrpcService<GatewayHealthService>();
        app.MapGrpcReflectionService();

        // Forwarded calls win over the gateway's own (unimplemented) handlers for the same paths.
        var forwarder = app.Services.GetRequiredService<ModelCallForwarder>();
        foreach (var method in GrpcMethods.All.Where(m => m.Route != MethodRoute.Gateway))
        {
            app.MapPost(method.Path, context => forwarder.ForwardAsync(context, method)).WithOrder(-1);
        }

        return app;
    }

    private static string Printable(string? path)
    {
        var value = path ?? "";
        value = value.Length > 128 ? value[..128] + "…" : value;
        return string.Concat(value.Select(c => char.IsControl(c) ? '?' : c));
    }

    /// <summary>Validates the settings before listening; false (after logging every problem) when they are wrong.</summary>
    public static bool CheckSettings(this WebApplication app)
    {
        try
        {
            _ = app.Services.GetRequiredService<IOptions<GatewayOptions>>().Value;
            return true;
        }
        catch (OptionsValidationException e)
        {
            GatewayLog.SettingsInvalid(app.Logger, string.Join(" ", e.Failures));
            return false;
        }
    }
}
