using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using OpenTelemetry;
using OpenTelemetry.Logs;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace EffServe.ServiceDefaults;

/// <summary>The wiring every EffServe host shares (ARCHITECTURE.md: ServiceDefaults).</summary>
public static class ServiceDefaultsExtensions
{
    /// <summary>Meters of the platform recorded beside the host's own: HTTP server and client, Kestrel, the runtime.</summary>
    private static readonly string[] s_platformMeters = ["Microsoft.AspNetCore.Hosting", "Microsoft.AspNetCore.Server.Kestrel", "System.Net.Http", "System.Runtime"];

    /// <summary>
    /// Activity sources of the platform: ASP.NET Core's server span (shaped by <see cref="ServerSpans"/>),
    /// outgoing HTTP and gRPC calls (the gateway's calls to replicas) and YARP's forwarder.
    /// </summary>
    private static readonly string[] s_platformSources = ["Microsoft.AspNetCore", "System.Net.Http", "Grpc.Net.Client", "Yarp.ReverseProxy"];

    /// <summary>
    /// Platform instruments recorded on every request that say nothing the host needs: Kestrel's
    /// per-stream queue counter. Dropped instruments are not even listened to.
    /// </summary>
    private static readonly string[] s_droppedPlatformInstruments = ["kestrel.queued_requests"];

    /// <summary>Incoming calls never traced: health checks, reflection and the metrics scrape.</summary>
    private static readonly string[] s_untracedPaths = ["/grpc.health.v1.Health/", "/grpc.reflection.", "/metrics"];

    /// <summary>
    /// OpenTelemetry for this host, unless EffServe:Telemetry:Enabled is false. Metrics (the
    /// platform's and <paramref name="instrumentation"/>'s meters) are aggregated only when
    /// something reads them: the Prometheus scrape listener (EffServe:Telemetry:MetricsUrl) or, where
    /// there is none (or OTEL_METRICS_EXPORTER says otlp), OTLP.
    /// Traces (ASP.NET Core's server span, outgoing HTTP and gRPC, YARP and
    /// <paramref name="instrumentation"/>'s sources) follow EffServe:Telemetry:Traces: by default
    /// only when OTLP export is configured. OTLP export (traces, logs and, as above, metrics)
    /// happens only when OTEL_EXPORTER_OTLP_ENDPOINT is set.
    /// </summary>
    /// <param name="builder">The host.</param>
    /// <param name="serviceName">service.name when neither EffServe:Telemetry:ServiceName nor OTEL_SERVICE_NAME sets one.</param>
    /// <param name="instrumentation">Names of the host's own meters and activity sources (one name serves both).</param>
    /// <param name="replacedPlatformInstruments">Platform instruments the host's own metrics replace, not recorded (each costs every request).</param>
    public static WebApplicationBuilder AddServiceDefaults(this WebApplicationBuilder builder, string serviceName, IReadOnlyList<string>? instrumentation = null, IReadOnlyList<string>? replacedPlatformInstruments = null)
    {
        builder.AddStartupLogGate();
        var services = builder.Services;
        services.AddValidatedOptions<TelemetryOptions>(TelemetryOptions.SectionName);
        services.AddSingleton<IValidateOptions<TelemetryOptions>, TelemetryOptionsValidator>();

        TelemetryOptions options;
        try
        {
            options = builder.Configuration.GetSection(TelemetryOptions.SectionName).Get<TelemetryOptions>() ?? new TelemetryOptions();
        }
        catch (InvalidOperationException)
        {
            // A value that does not convert: the host's settings check names it (with every other
            // problem) before anything runs; until then the defaults stand.
            options = new TelemetryOptions();
        }
        if (!options.Enabled)
        {
            services.AddSingleton(new TelemetryWiring(Traces: false));
            return builder;
        }

        var sources = instrumentation?.ToArray() ?? [];

        // Server spans are shaped whoever listens (this host's tracer or another in the process).
        services.AddSingleton<IStartupFilter, ServerSpans>();
        var otlp = !string.IsNullOrWhiteSpace(builder.Configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]);
        var prometheus = options.MetricsUrl.Length > 0;
        var traces = options.Traces switch
        {
            TraceMode.On => true,
            TraceMode.Off => false,
            _ => otlp,
        };

        // Every metric reader aggregates every measurement again, so metrics go to one place unless
        // told otherwise: the scrape listener when there is one, else OTLP. With otlp in
        // OTEL_METRICS_EXPORTER (e.g. "prometheus,otlp") OTLP gets them as well; without it, not.
        var otlpMetrics = otlp && OtlpMetricsWanted(builder.Configuration["OTEL_METRICS_EXPORTER"], prometheus);
        services.AddSingleton(new TelemetryWiring(traces));
        if (!traces && !prometheus && !otlp)
        {
            return builder;
        }

        var configuredName = options.ServiceName.Length > 0 ? options.ServiceName : builder.Configuration["OTEL_SERVICE_NAME"];
        var otel = services.AddOpenTelemetry()
            .ConfigureResource(resource =>
            {
                if (string.IsNullOrEmpty(builder.Configuration["OTEL_SERVICE_NAME"]) || options.ServiceName.Length > 0)
                {
                    resource.AddService(string.IsNullOrEmpty(configuredName) ? serviceName : configuredName);
                }
            });
        if (traces)
        {
            otel.WithTracing(tracing =>
            {
                // Client spans are shaped before any exporter added after this sees them.
                tracing.SetSampler(new TelemetrySampler(options.TraceSampleRatio))
                    .AddSource(s_platformSources)
                    .AddSource(sources)
                    .AddProcessor(new ClientSpans());
                if (otlp)
                {
                    tracing.AddOtlpExporter(o => OtlpSignal.Apply(o, builder.Configuration, OtlpSignal.Traces));
                }
            });
        }

        if (prometheus || otlpMetrics)
        {
            otel.WithMetrics(metrics =>
            {
                metrics.AddMeter(s_platformMeters).AddMeter(sources);
                foreach (var name in s_droppedPlatformInstruments.Concat(replacedPlatformInstruments ?? []))
                {
                    metrics.AddView(name, MetricStreamConfiguration.Drop);
                }

                if (otlpMetrics)
                {
                    metrics.AddOtlpExporter((o, _) => OtlpSignal.Apply(o, builder.Configuration, OtlpSignal.Metrics));
                }
            });
        }

        if (prometheus)
        {
            otel.WithMetrics(metrics => metrics.AddPrometheusExporter());
            services.AddSingleton<MetricsListener>();
            services.AddHostedService(sp => sp.GetRequiredService<MetricsListener>());
        }

        if (otlp)
        {
            otel.WithLogging(configureBuilder: null, configureOptions: o =>
            {
                o.IncludeFormattedMessage = true;
                o.IncludeScopes = true;
                o.AddOtlpExporter(e => OtlpSignal.Apply(e, builder.Configuration, OtlpSignal.Logs));
            });
        }

        return builder;
    }

    /// <summary>
    /// Binds <typeparamref name="T"/> to <paramref name="sectionName"/> and validates it when the host
    /// starts; with <paramref name="validate"/>, every problem it lists fails the start at once.
    /// </summary>
    public static IServiceCollection AddValidatedOptions<T>(this IServiceCollection services, string sectionName, Func<T, IEnumerable<string>>? validate = null)
        where T : class
    {
        services.AddOptions<T>().BindConfiguration(sectionName).ValidateOnStart();
        if (validate is not null)
        {
            services.AddSingleton<IValidateOptions<T>>(new ListValidator<T>(validate));
        }

        return services;
    }

    /// <summary>
    /// Whether metrics are pushed over OTLP (OTLP export being configured): as OTEL_METRICS_EXPORTER
    /// lists (otlp, prometheus, none; comma-separated), or, when it is unset, only where there is no
    /// Prometheus scrape listener to read them instead.
    /// </summary>
    public static bool OtlpMetricsWanted(string? metricsExporter, bool prometheus)
    {
        if (string.IsNullOrWhiteSpace(metricsExporter))
        {
            return !prometheus;
        }

        return metricsExporter.Split(',', StringSplitOptions.TrimEntries).Contains("otlp", StringComparer.OrdinalIgnoreCase);
    }

    /// <summary>Whether a call to <paramref name="path"/> is traced: every call but health, reflection and metrics.</summary>
    public static bool IsTraced(PathString path)
    {
        var value = path.Value ?? "";
        foreach (var prefix in s_untracedPaths)
        {
            if (value.StartsWith(prefix, StringComparison.Ordinal))
            {
                return false;
            }
        }

        return true;
    }

    private sealed class ListValidator<T>(Func<T, IEnumerable<string>> validate) : IValidateOptions<T>
        where T : class
    {
        public ValidateOptionsResult Validate(string? name, T options)
        {
            var problems = validate(options).ToList();
            return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems);
        }
    }
}
