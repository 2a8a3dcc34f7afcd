using EffServe.Gateway.Door;
using EffServe.Gateway.Forwarding;
using EffServe.Gateway.Routing;
using EffServe.Gateway.Services;
using EffServe.ServiceDefaults;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace EffServe.Gateway;

public static class GatewayExtensions
{
    /// <summary>The model-level calls: forwarded to a replica of the model they name.</summary>
    private static readonly string[] s_unaryModelCalls = ["ModelInfer", "ModelMetadata", "ModelReady", "ModelConfig"];

    /// <summary>Job calls that name a job: routed to a replica of the model the job id starts with.</summary>
    private static readonly string[] s_jobIdCalls = ["GetJob", "CancelJob", "StreamJobResults"];

    /// <summary>Server-level calls that still need an identity when the door is closed.</summary>
    private static readonly string[] s_guardedServerCalls = ["/inference.GRPCInferenceService/RepositoryIndex", "/inference.GRPCInferenceService/ModelStatistics", "/effserve.v1.ZooService/ListModels"];

    /// <summary>
    /// Registers the gateway: the service defaults (OpenTelemetry: its server spans, YARP's forwarder
    /// span and the call to the replica, which carries the W3C trace context on), options, routing,
    /// the door, forwarding and health.
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
        services.AddSingleton<GatewayDoor>();
        services.AddSingleton<ModelCallForwarder>();
        services.AddSingleton<GatewayMetrics>();
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton<GatewayHealthService>();
        services.AddSingleton<GatewayInferenceService>();
        services.AddSingleton<ReplicaWatcher>();
        services.AddHostedService(sp => sp.GetRequiredService<ReplicaWatcher>());
        services.AddGrpc();

        // The forwarding path logs nothing per request: YARP's per-request information lines cost
        // more than the hop itself.
        builder.Logging.AddFilter("Yarp", LogLevel.Warning);

        // YARP warns on every call that it cannot lift the body-size limit once the body was read;
        // the gateway reads unary bodies itself and enforces its own limit, so that line is noise.
        builder.Logging.AddFilter("Yarp.ReverseProxy.Forwarder.HttpForwarder", LogLevel.Error);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = null; // the gateway enforces its own limit with a gRPC status
            k.ConfigureEndpointDefaults(e => e.Protocols = HttpProtocols.Http2);
        });

        return builder;
    }

    public static WebApplication MapGateway(this WebApplication app)
    {
        var door = app.Services.GetRequiredService<GatewayDoor>();
        app.UseMiddleware<GatewayMetricsMiddleware>();
        app.Use(async (context, next) =>
        {
            if (s_guardedServerCalls.Contains(context.Request.Path.Value, StringComparer.OrdinalIgnoreCase) && !await door.AdmitAsync(context))
            {
                return;
            }

            await next(context);
        });

        app.MapGrpcService<GatewayInferenceService>();
        app.MapGrpcService<GatewayZooService>();
        app.MapGrpcService<GatewayHealthService>();

        // Forwarded calls win over the gateway's own (unimplemented) handlers for the same paths.
        var forwarder = app.Services.GetRequiredService<ModelCallForwarder>();
        foreach (var method in s_unaryModelCalls)
        {
            app.MapPost($"/inference.GRPCInferenceService/{method}", forwarder.ForwardUnaryAsync).WithOrder(-1);
        }

        app.MapPost("/inference.GRPCInferenceService/ModelStreamInfer", forwarder.ForwardStreamingAsync).WithOrder(-1);

        // effserve.v1.JobService: SubmitJob names the model in field 1, the other calls a job id that starts with it.
        app.MapPost("/effserve.v1.JobService/SubmitJob", forwarder.ForwardUnaryAsync).WithOrder(-1);
        foreach (var method in s_jobIdCalls)
        {
            app.MapPost($"/effserve.v1.JobService/{method}", forwarder.ForwardJobAsync).WithOrder(-1);
        }

        return app;
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
