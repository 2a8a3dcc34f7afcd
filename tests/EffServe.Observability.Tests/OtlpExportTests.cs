using System.Collections.Concurrent;
using EffServe.Contracts.Inference;
using EffServe.Observability.Tests.Support;
using EffServe.ServiceDefaults;
using EffServe.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Exporter;
using OpenTelemetry.Trace;

namespace EffServe.Observability.Tests;

/// <summary>
/// OTLP export to a real HTTP collector stand-in: where spans go with the shared endpoint and with
/// a traces endpoint of their own, and how the per-signal variables map onto the exporter.
/// </summary>
[Collection(nameof(OneServerAtATime))]
public sealed class OtlpExportTests
{
    [Theory]
    [InlineData(null, "/v1/traces")]
    [InlineData("/collector/spans", "/collector/spans")]
    public async Task Otlp_Configured_SpansReachTheCollectorAtTheirPath(string? tracesPath, string expected)
    {
        await using var sink = await Sink.StartAsync();
        var settings = new Dictionary<string, string?>
        {
            ["OTEL_EXPORTER_OTLP_ENDPOINT"] = sink.Address,
            ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf",
            ["OTEL_BSP_SCHEDULE_DELAY"] = "100",
        };
        if (tracesPath is not null)
        {
            settings["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = sink.Address + tracesPath;
        }

        // A service process of its own, as deployed: in this process the service's tracer would also
        // hear the test's own HTTP client spans.
        await using (var service = await InferenceProcess.StartAsync(RepoPaths.Zoo, settings, cancellationToken: Digits.Ct))
        {
            await new GRPCInferenceService.GRPCInferenceServiceClient(service.Channel).ModelInferAsync(Digits.Request(1), cancellationToken: Digits.Ct);
            var giveUpAt = TimeProvider.System.GetUtcNow().AddSeconds(20);
            while (!sink.Paths.Contains(expected) && TimeProvider.System.GetUtcNow() < giveUpAt)
            {
                await Task.Delay(50, Digits.Ct);
            }
        }

        Assert.True(sink.Paths.Contains(expected), $"The collector at {sink.Address} saw {string.Join(", ", sink.Paths.Distinct())}; expected spans at {expected}.");
    }

    /// <summary>
    /// With a collector configured (so the gateway traces every call), the gateway still records its
    /// own request duration for every call: the metric does not depend on the tracer.
    /// </summary>
    [Fact]
    public async Task Gateway_TracingOnWithCollector_RequestDurationStillRecorded()
    {
        await using var sink = await Sink.StartAsync();
        await using var service = await InferenceServer.StartAsync(RepoPaths.Zoo);
        await using var gateway = await GatewayServer.StartAsync(new Dictionary<string, string?>
        {
            ["EffServe:Gateway:Models:digits:Destinations:0"] = service.Address.GetLeftPart(UriPartial.Authority),
            ["EffServe:Gateway:HealthCheckInterval"] = "00:00:00.200",
            ["EffServe:Telemetry:MetricsUrl"] = "http://127.0.0.1:0",
            ["OTEL_EXPORTER_OTLP_ENDPOINT"] = sink.Address,
            ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf",
            ["OTEL_BSP_SCHEDULE_DELAY"] = "100",
        });
        await gateway.WaitUntilServingAsync(Digits.Model);
        Assert.True(gateway.Services.GetRequiredService<TelemetryWiring>().Traces, "With a collector configured the gateway should trace (Traces=Auto).");
        Assert.NotNull(gateway.Services.GetService<TracerProvider>());

        var client = new GRPCInferenceService.GRPCInferenceServiceClient(gateway.Channel);
        for (var i = 0; i < 3; i++)
        {
            await client.ModelInferAsync(Digits.Request(i), cancellationToken: Digits.Ct);
        }

        // The spans reached the collector ...
        var giveUpAt = TimeProvider.System.GetUtcNow().AddSeconds(20);
        while (!sink.Paths.Contains("/v1/traces") && TimeProvider.System.GetUtcNow() < giveUpAt)
        {
            await Task.Delay(50, Digits.Ct);
        }

        Assert.Contains("/v1/traces", sink.Paths);

        // ... and every call is in the gateway's own metric.
        using var http = new HttpClient();
        var text = await http.GetStringAsync(gateway.Services.GetRequiredService<MetricsListener>().ScrapeUrl, Digits.Ct);
        var infer = text.Split('\n').Single(l => l.StartsWith("effserve_gateway_request_duration_seconds_count{", StringComparison.Ordinal)
            && l.Contains("rpc_method=\"ModelInfer\"", StringComparison.Ordinal));
        Assert.Contains("rpc_grpc_status_code=\"0\"", infer, StringComparison.Ordinal);
        Assert.Equal("3", infer[(infer.IndexOf('}', StringComparison.Ordinal) + 2)..].Split(' ')[0]);
    }

    [Fact]
    public void OtlpSignal_VariablesSet_OverrideTheSharedOnes()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = "http://collector:4318/x/traces",
            ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"] = "http/protobuf",
            ["OTEL_EXPORTER_OTLP_TRACES_HEADERS"] = "api-key=abc",
            ["OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"] = "2500",
            ["OTEL_EXPORTER_OTLP_LOGS_PROTOCOL"] = "grpc",
        }).Build();
        var traces = new OtlpExporterOptions { Endpoint = new Uri("http://shared:4317"), Protocol = OtlpExportProtocol.Grpc };
        var logs = new OtlpExporterOptions { Endpoint = new Uri("http://shared:4317"), Protocol = OtlpExportProtocol.HttpProtobuf };

        OtlpSignal.Apply(traces, configuration, OtlpSignal.Traces);
        OtlpSignal.Apply(logs, configuration, OtlpSignal.Logs);

        Assert.Equal((new Uri("http://collector:4318/x/traces"), OtlpExportProtocol.HttpProtobuf, "api-key=abc", 2500), (traces.Endpoint, traces.Protocol, traces.Headers, traces.TimeoutMilliseconds));
        Assert.Equal((new Uri("http://shared:4317"), OtlpExportProtocol.Grpc), (logs.Endpoint, logs.Protocol));
    }

    [Theory]
    [InlineData("PROTOCOL", "http/json", "use grpc or http/protobuf")]
    [InlineData("ENDPOINT", "collector:4318", "not an absolute http:// or https:// URL")]
    [InlineData("TIMEOUT", "soon", "positive number of milliseconds")]
    public void OtlpSignal_BadVariable_SaysWhatToSet(string name, string value, string expected)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { [$"OTEL_EXPORTER_OTLP_TRACES_{name}"] = value }).Build();

        var e = Assert.Throws<InvalidOperationException>(() => OtlpSignal.Apply(new OtlpExporterOptions(), configuration, OtlpSignal.Traces));

        Assert.Contains($"OTEL_EXPORTER_OTLP_TRACES_{name}", e.Message, StringComparison.Ordinal);
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    /// <summary>An HTTP/1.1 listener on a free loopback port that answers every POST 200 and remembers its path.</summary>
    private sealed class Sink : IAsyncDisposable
    {
        private readonly WebApplication _app;

        private Sink(WebApplication app) => _app = app;

        /// <summary>http://127.0.0.1:PORT, known once started.</summary>
        public string Address => _app.Urls.First();

        public ConcurrentBag<string> Paths { get; } = [];

        public static async Task<Sink> StartAsync()
        {
            var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = [] });
            builder.Logging.ClearProviders();
            builder.WebHost.ConfigureKestrel(k => k.Listen(System.Net.IPAddress.Loopback, 0, o => o.Protocols = Microsoft.AspNetCore.Server.Kestrel.Core.HttpProtocols.Http1));
            var app = builder.Build();
            var sink = new Sink(app);
            app.Run(async context =>
            {
                sink.Paths.Add(context.Request.Path.Value ?? "");
                await context.Request.Body.CopyToAsync(Stream.Null, context.RequestAborted);
                context.Response.ContentType = "application/x-protobuf";
            });
            await app.StartAsync(Digits.Ct);
            return sink;
        }

        public async ValueTask DisposeAsync()
        {
            await _app.StopAsync(CancellationToken.None);
            await _app.DisposeAsync();
        }
    }
}
