using EffServe.Core.Accounting;
using EffServe.Core.Zoo;
using EffServe.Inference.Serving;
using EffServe.Contracts.Inference;
using EffServe.Contracts.Jobs;
using EffServe.Contracts.Zoo;
using EffServe.Inference.Jobs;
using EffServe.Inference.Rpc;
using EffServe.Inference.Services;
using EffServe.Onnx;
using EffServe.ServiceDefaults;
using EffServe.ServiceDefaults.Instrumentation;
using Grpc.Health.V1;
using Grpc.HealthCheck;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Options;
using System.Globalization;
using EffServe.Inference.Caching;
using EffServe.Redis;
using Grpc.AspNetCore.Server;

namespace EffServe.Inference;

public static partial class InferenceServiceExtensions
{
    /// <summary>
    /// Registers the inference service: the service defaults (OpenTelemetry, EffServe:Telemetry),
    /// options (validated at start-up), the zoo, run slots, energy and cost accounting
    /// (EffServe:Accounting), gRPC, health and reflection.
    /// </summary>
    public static WebApplicationBuilder AddInferenceService(this WebApplicationBuilder builder)
    {
        // The service's own instruments replace ASP.NET Core's per-request ones, each of which costs
        // every request: effserve.request.duration (by model, variant, device and outcome) and
        // effserve.requests.active (observed, free per request).
        builder.AddServiceDefaults("effserve-inference", [InferenceInstrumentation.Name], replacedPlatformInstruments: ["http.server.request.duration", "http.server.active_requests"]);
        var services = builder.Services;
        services.AddOptions<InferenceServiceOptions>().BindConfiguration(InferenceServiceOptions.SectionName).ValidateOnStart();
        services.AddOptions<OnnxOptions>().BindConfiguration(OnnxOptions.SectionName).ValidateOnStart();
        services.AddSingleton<IValidateOptions<InferenceServiceOptions>, InferenceServiceOptionsValidator>();
        services.AddSingleton<IValidateOptions<OnnxOptions>, OnnxOptionsValidator>();
        services.AddSingleton(TimeProvider.System);
        services.AddSingleton<HealthServiceImpl>();
        services.AddSingleton<ModelRepository>();
        services.AddSingleton<RunSlots>();
        services.AddValidatedOptions<AccountingOptions>(AccountingOptions.SectionName, o => o.Validate());
        services.AddValidatedOptions<SelectionOptions>(SelectionOptions.SectionName, o => o.Validate());
        services.AddSingleton(sp => new Accountant(
            sp.GetRequiredService<IOptions<AccountingOptions>>().Value,
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<RunSlots>().Capacity));
        services.AddSingleton<InferenceInstrumentation>();
        services.AddSingleton<CpuPressureSampler>();
        services.AddSingleton<InferenceEngine>();
        builder.AddCacheAndJobs();
        services.AddHostedService<StoppingNotifier>();

        services.AddGrpc(o =>
        {
            o.EnableDetailedErrors = false;
            o.Interceptors.Add<StatusDetailInterceptor>();
        });

        // The message limit comes from the bound options, so that a value that does not convert is
        // reported by CheckSettings with the others instead of failing here.
        services.AddOptions<GrpcServiceOptions>().Configure<IOptions<InferenceServiceOptions>>((o, inference) =>
        {
            o.MaxReceiveMessageSize = inference.Value.MaxMessageBytes;
            o.MaxSendMessageSize = inference.Value.MaxMessageBytes;
        });

        // grpc-dotnet logs each call it refuses at Information with the exception and its stack
        // trace; a client sending garbage would fill the log. The service logs its own one line
        // (InferenceLog.MalformedRequest) instead, whatever the configuration says about Grpc.
        builder.Logging.AddFilter("Grpc.AspNetCore.Server.ServerCallHandler", LogLevel.Warning);
        services.AddGrpcReflection();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = null;
            // gRPC without TLS needs HTTP/2 with prior knowledge (h2c); Kestrel's plaintext default is HTTP/1.1.
            k.ConfigureEndpointDefaults(e => e.Protocols = HttpProtocols.Http2);
        });
        return builder;
    }

    /// <summary>
    /// Maps the OIP v2 service, the zoo service, the job service, grpc.health.v1 and server
    /// reflection. Every service but reflection refuses a request that is not valid protobuf with
    /// INVALID_ARGUMENT (<see cref="ValidatingServiceBinder"/>).
    /// </summary>
    public static WebApplication MapInferenceService(this WebApplication app)
    {
        ValidatingServiceBinder.Map<InferenceGrpcService>(app, GRPCInferenceService.BindService);
        ValidatingServiceBinder.Map<ZooGrpcService>(app, ZooService.BindService);
        ValidatingServiceBinder.Map<JobGrpcService>(app, JobService.BindService);
        ValidatingServiceBinder.Map<HealthServiceImpl>(app, Health.BindService);
        app.MapGrpcReflectionService();
        return app;
    }

    /// <summary>
    /// Checks every settings section the service reads (EffServe:Inference, Onnx, Selection,
    /// Accounting, Cache, Redis, Jobs, Telemetry) before the zoo loads. On any problem it logs all of
    /// them in one line, each with its setting's path (a value that does not convert names the value
    /// too), and returns false, so the process can exit with status 2 and no stack trace.
    /// </summary>
    public static bool CheckSettings(this WebApplication app)
    {
        var problems = new List<string>();
        var services = app.Services;
        SettingsCheck.Check<InferenceServiceOptions>(services, InferenceServiceOptions.SectionName, problems);
        SettingsCheck.Check<OnnxOptions>(services, OnnxOptions.SectionName, problems);
        SettingsCheck.Check<SelectionOptions>(services, SelectionOptions.SectionName, problems);
        SettingsCheck.Check<AccountingOptions>(services, AccountingOptions.SectionName, problems);
        SettingsCheck.Check<CacheOptions>(services, CacheOptions.SectionName, problems);
        SettingsCheck.Check<RedisOptions>(services, RedisOptions.SectionName, problems);
        SettingsCheck.Check<JobOptions>(services, JobOptions.SectionName, problems);
        SettingsCheck.Check<TelemetryOptions>(services, TelemetryOptions.SectionName, problems);
        if (problems.Count == 0)
        {
            return true;
        }

        var count = problems.Count == 1 ? "1 problem" : string.Create(CultureInfo.InvariantCulture, $"{problems.Count} problems");
        InferenceLog.SettingsInvalid(app.Logger, $"{count}: {string.Join(" ", problems)}");
        return false;
    }

    /// <summary>
    /// Loads and warms the zoo before the server listens. On a bad zoo or bad settings it logs every
    /// problem once and returns false, so the process can exit with a clear message and no stack trace.
    /// </summary>
    public static bool LoadZoo(this WebApplication app)
    {
        try
        {
            app.Services.GetRequiredService<ModelRepository>().Load();
            foreach (var note in app.Services.GetRequiredService<Accountant>().Notes)
            {
                EnergySource(app.Logger, note);
            }

            return true;
        }
        catch (ZooValidationException)
        {
            return false; // already logged with every problem
        }
        catch (OptionsValidationException e)
        {
            InferenceLog.SettingsInvalid(app.Logger, string.Join(" ", e.Failures));
            return false;
        }
    }

    /// <summary>Which part of EffServe this process is, for start-up messages: the inference service for the models it loaded.</summary>
    public static string Part(this WebApplication app)
    {
        var names = app.Services.GetRequiredService<ModelRepository>().Names.ToList();
        return names.Count switch
        {
            0 => "the inference service",
            1 => $"the inference service for model {names[0]}",
            _ => $"the inference service for models {string.Join(", ", names)}",
        };
    }

    [LoggerMessage(EventId = 20, Level = LogLevel.Information, Message = "Accounting: {Note}")]
    private static partial void EnergySource(ILogger logger, string note);
}
