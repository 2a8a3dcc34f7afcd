using EffServe.Contracts.Inference;
using EffServe.Inference.Serving;
using EffServe.Observability.Tests.Support;
using EffServe.ServiceDefaults;
using EffServe.ServiceDefaults.Instrumentation;
using EffServe.Testing;
using Grpc.Core;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Metrics;

namespace EffServe.Observability.Tests;

/// <summary>The inference service's metrics: names, units, tags, values, and the Prometheus scrape.</summary>
[Collection(nameof(OneServerAtATime))]
public sealed class MetricsTests
{
    private static readonly HashSet<string> s_allowedTags = [TagNames.Model, TagNames.Variant, TagNames.Device, TagNames.Outcome, TagNames.SloClass, TagNames.Stage, TagNames.Source, TagNames.Host];

    [Fact]
    public async Task Metrics_MixedRequests_HaveTheRightNamesTagsAndValues()
    {
        using var telemetry = new Telemetry();

        // A budget nothing can meet is served late (not shed), so that its SLO is seen missed.
        await using var service = await InferenceServer.StartAsync(RepoPaths.Zoo, new Dictionary<string, string?> { ["EffServe:Selection:WhenNothingFits"] = "fastest" });
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(service.Channel);
        var missed = Digits.Request(8, batch: 4, sloMs: 0.0001);
        missed.Parameters.Add("effserve.variant", new InferParameter { StringParam = "fp32" });

        await client.ModelInferAsync(Digits.Request(0, batch: 1, sloMs: 60_000), cancellationToken: Digits.Ct);    // fp32, SLO met
        await client.ModelInferAsync(Digits.Request(0, batch: 8, threshold: 0.9), cancellationToken: Digits.Ct);   // early exit, 8 samples
        await client.ModelInferAsync(missed, cancellationToken: Digits.Ct);                                         // fp32, SLO missed (100 ns)
        var bad = Digits.Request(0);
        bad.Inputs[0].Shape[1] = 2;
        await Assert.ThrowsAsync<RpcException>(() => client.ModelInferAsync(bad, cancellationToken: Digits.Ct).ResponseAsync);

        var metrics = telemetry.CollectMetrics();

        // Every EffServe metric carries only the bounded tags.
        foreach (var metric in metrics.Values)
        {
            foreach (var point in metric.MetricPoints)
            {
                foreach (var tag in TagsOf(point))
                {
                    Assert.True(s_allowedTags.Contains(tag.Key), $"{metric.Name} carries tag '{tag.Key}'.");
                }
            }
        }

        var duration = metrics["effserve.request.duration"];
        Assert.Equal(("s", MetricType.Histogram), (duration.Unit, duration.MetricType));
        Assert.Equal(2, HistogramCount(duration, ("variant", "fp32"), ("outcome", "ok")));
        Assert.Equal(1, HistogramCount(duration, ("variant", "early-exit"), ("device", "cpu"), ("outcome", "ok")));
        Assert.Equal(1, HistogramCount(duration, ("model", "digits"), ("outcome", "invalid_argument")));
        var bounds = new List<double>();
        foreach (var bucket in duration.MetricPoints[0].GetHistogramBuckets())
        {
            bounds.Add(bucket.ExplicitBound);
        }

        Assert.Equal([.. InferenceInstrumentation.LatencyBuckets, double.PositiveInfinity], bounds);

        var slo = metrics["effserve.slo.requests"];
        Assert.Equal(1, Sum(slo, ("outcome", "met"), ("slo_class", "inf")));
        Assert.Equal(1, Sum(slo, ("outcome", "missed"), ("slo_class", "1")));

        var exits = metrics["effserve.early_exit.samples"];
        Assert.Equal(8, Sum(exits, ("variant", "early-exit")));
        Assert.All(exits.MetricPoints, p => Assert.Contains(TagsOf(p), t => t.Key == "stage"));

        var batch = metrics["effserve.batch.size"];
        Assert.Equal(3, HistogramCount(batch));
        Assert.Equal(13, batch.MetricPoints.Sum(p => p.GetHistogramSum()));

        Assert.Equal(3, HistogramCount(metrics["effserve.queue.duration"]));
        Assert.Equal(3, HistogramCount(metrics["effserve.compute.duration"]));
        Assert.Equal(3, HistogramCount(metrics["effserve.request.energy"], ("source", "modelled")));
        Assert.Equal("mJ", metrics["effserve.request.energy"].Unit);
        Assert.Equal(3, HistogramCount(metrics["effserve.request.cost"]));
        Assert.True(metrics["effserve.request.energy"].MetricPoints.Sum(p => p.GetHistogramSum()) > 0);
        Assert.True(metrics["effserve.request.cost"].MetricPoints.Sum(p => p.GetHistogramSum()) > 0);
        Assert.True(Sum(metrics["effserve.device.time"]) > 0);
        Assert.True(Sum(metrics["effserve.carbon"]) > 0);
        Assert.Equal(0, Sum(metrics["effserve.requests.active"]));
        Assert.Equal(0, Sum(metrics["effserve.queue.depth"]));

        // The autoscaling signal: capacity from the compute time seen, beside the offered load.
        Assert.True(Gauge(metrics["effserve.capacity"], ("model", "digits")) > 0);
        Assert.True(Gauge(metrics["effserve.load"], ("model", "digits")) >= 0);
        Assert.True(Gauge(metrics["effserve.power.idle"], ("device", "cpu"), ("source", "modelled")) > 0);
        Assert.DoesNotContain(metrics["effserve.power.idle"].MetricPoints, p => TagsOf(p).Any(t => t.Key == "device" && (string?)t.Value == "gpu"));
    }

    [Fact]
    public async Task Metrics_TimeoutPassesInTheQueue_CountedAsDropped()
    {
        using var telemetry = new Telemetry();
        await using var service = await InferenceServer.StartAsync(RepoPaths.Zoo, new Dictionary<string, string?> { ["EffServe:Inference:MaxConcurrentRuns"] = "1" });
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(service.Channel);

        // The test holds the only run slot, so a request with a 50 ms Triton timeout waits in the
        // queue until its timeout passes and is given up there.
        var slots = service.Services.GetRequiredService<RunSlots>();
        await slots.WaitAsync(Digits.Ct);
        try
        {
            var late = Digits.Request(0);
            late.Parameters.Add("timeout", new InferParameter { Int64Param = 50_000 });
            var error = await Assert.ThrowsAsync<RpcException>(() => client.ModelInferAsync(late, cancellationToken: Digits.Ct).ResponseAsync);
            Assert.Equal(StatusCode.DeadlineExceeded, error.StatusCode);
        }
        finally
        {
            slots.Release();
        }

        var metrics = telemetry.CollectMetrics();
        Assert.Equal(1, Sum(metrics["effserve.requests.dropped"], ("model", "digits"), ("outcome", "timeout")));
        Assert.Equal(1, HistogramCount(metrics["effserve.request.duration"], ("outcome", "deadline_exceeded")));
    }

    [Fact]
    public async Task Gateway_Calls_RecordedByMethodModelAndStatus()
    {
        await using var service = await InferenceServer.StartAsync(RepoPaths.Zoo);
        await using var gateway = await GatewayServer.StartAsync(new Dictionary<string, string?>
        {
            ["EffServe:Gateway:Models:digits:Destinations:0"] = service.Address.GetLeftPart(UriPartial.Authority),
            ["EffServe:Gateway:HealthCheckInterval"] = "00:00:00.200",
            ["EffServe:Telemetry:MetricsUrl"] = "http://127.0.0.1:0",
        });
        await gateway.WaitUntilServingAsync(Digits.Model);
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(gateway.Channel);
        for (var i = 0; i < 3; i++)
        {
            await client.ModelInferAsync(Digits.Request(i), cancellationToken: Digits.Ct);
        }

        await client.ServerLiveAsync(new ServerLiveRequest(), cancellationToken: Digits.Ct);

        using var http = new HttpClient();
        var text = await http.GetStringAsync(gateway.Services.GetRequiredService<MetricsListener>().ScrapeUrl, Digits.Ct);
        var infer = text.Split('\n').Single(l => l.StartsWith("effserve_gateway_request_duration_seconds_count{", StringComparison.Ordinal)
            && l.Contains("rpc_method=\"ModelInfer\"", StringComparison.Ordinal));
        var live = text.Split('\n').Single(l => l.StartsWith("effserve_gateway_request_duration_seconds_count{", StringComparison.Ordinal)
            && l.Contains("rpc_method=\"ServerLive\"", StringComparison.Ordinal));

        Assert.Contains("effserve_model=\"digits\"", infer, StringComparison.Ordinal);
        Assert.Contains("rpc_grpc_status_code=\"0\"", infer, StringComparison.Ordinal);
        Assert.Equal("3", infer[(infer.IndexOf('}', StringComparison.Ordinal) + 2)..].Split(' ')[0]);
        Assert.Contains("effserve_model=\"\"", live, StringComparison.Ordinal);
        Assert.Contains("rpc_grpc_status_code=\"0\"", live, StringComparison.Ordinal);
    }

    /// <summary>
    /// Two model processes on one machine report its idle power under the same host, with the same
    /// figure: a dashboard takes it once per host (max by host), never summing the processes.
    /// </summary>
    [Fact]
    public async Task IdlePower_TwoProcessesOnOneHost_ReportTheMachineOnceUnderOneHost()
    {
        var settings = new Dictionary<string, string?>
        {
            ["EffServe:Telemetry:MetricsUrl"] = "http://127.0.0.1:0",
            ["EffServe:Accounting:Host"] = "node-a",
        };
        await using var first = await InferenceServer.StartAsync(RepoPaths.Zoo, settings);
        await using var second = await InferenceServer.StartAsync(RepoPaths.Zoo, settings);

        using var http = new HttpClient();
        var lines = new List<string>();
        foreach (var service in new[] { first, second })
        {
            var text = await http.GetStringAsync(service.Services.GetRequiredService<MetricsListener>().ScrapeUrl, Digits.Ct);
            lines.Add(text.Split('\n').Single(l => l.StartsWith("effserve_power_idle_watts{", StringComparison.Ordinal) && l.Contains("device=\"cpu\"", StringComparison.Ordinal)));
        }

        // The same series (host, device, source) with the same value from both: the machine's idle
        // power, Cpu:IdleWattsPerCore (1 W) × its cores, not a share of it per process.
        Assert.All(lines, l => Assert.Contains("host=\"node-a\"", l, StringComparison.Ordinal));
        var series = lines.Select(l => l[..(l.IndexOf('}', StringComparison.Ordinal) + 1)]).Distinct().ToList();
        Assert.Single(series);
        var watts = lines.Select(l => double.Parse(l[(l.IndexOf('}', StringComparison.Ordinal) + 2)..].Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture)).ToList();
        Assert.Equal(Environment.ProcessorCount, watts[0]);
        Assert.Equal(watts[0], watts[1]);
    }

    [Fact]
    public async Task MetricsUrl_Set_ServesPrometheusOnItsOwnHttp1Port()
    {
        await using var service = await InferenceServer.StartAsync(RepoPaths.Zoo, new Dictionary<string, string?> { ["EffServe:Telemetry:MetricsUrl"] = "http://127.0.0.1:0" });
        await new GRPCInferenceService.GRPCInferenceServiceClient(service.Channel).ModelInferAsync(Digits.Request(0, threshold: 0.5), cancellationToken: Digits.Ct);
        var listener = service.Services.GetRequiredService<MetricsListener>();
        Assert.NotNull(listener.ScrapeUrl);
        Assert.NotEqual(service.Address.Port, listener.Address!.Port);

        using var http = new HttpClient();
        using var scrape = await http.GetAsync(listener.ScrapeUrl, Digits.Ct);
        var text = await scrape.Content.ReadAsStringAsync(Digits.Ct);
        using var other = await http.GetAsync(new Uri(listener.Address, "/elsewhere"), Digits.Ct);

        Assert.True(scrape.IsSuccessStatusCode, $"GET /metrics answered {(int)scrape.StatusCode}.");
        Assert.Equal(new Version(1, 1), scrape.Version);
        Assert.Contains("effserve_request_duration_seconds_bucket{", text, StringComparison.Ordinal);
        Assert.Contains("effserve_request_energy_mJ_bucket{", text, StringComparison.Ordinal);
        Assert.Contains("effserve_early_exit_samples_total{", text, StringComparison.Ordinal);
        Assert.Contains("effserve_capacity", text, StringComparison.Ordinal);
        Assert.Contains("model=\"digits\"", text, StringComparison.Ordinal);
        Assert.Contains("kestrel_active_connections", text, StringComparison.Ordinal);

        // Replaced or useless per-request platform instruments are not recorded at all.
        Assert.DoesNotContain("http_server_request_duration", text, StringComparison.Ordinal);
        Assert.DoesNotContain("http_server_active_requests", text, StringComparison.Ordinal);
        Assert.DoesNotContain("kestrel_queued_requests", text, StringComparison.Ordinal);
        Assert.Equal(System.Net.HttpStatusCode.NotFound, other.StatusCode);
    }

    [Fact]
    public async Task TelemetryDisabled_ServesWithoutOpenTelemetryAndStillCharges()
    {
        await using var service = await InferenceServer.StartAsync(RepoPaths.Zoo, new Dictionary<string, string?> { ["EffServe:Telemetry:Enabled"] = "false" });

        var response = await new GRPCInferenceService.GRPCInferenceServiceClient(service.Channel).ModelInferAsync(Digits.Request(3), cancellationToken: Digits.Ct);

        Assert.Null(service.Services.GetService<MeterProvider>());
        Assert.Null(service.Services.GetService<OpenTelemetry.Trace.TracerProvider>());
        Digits.AssertCharged(response);
    }

    /// <summary>
    /// Nothing is aggregated or traced for nobody: metrics need a reader (the scrape listener or
    /// OTLP), spans need OTLP export unless EffServe:Telemetry:Traces says on or off.
    /// </summary>
    [Theory]
    [InlineData("", "Auto", false, false)]
    [InlineData("http://127.0.0.1:0", "Auto", true, false)]
    [InlineData("", "On", false, true)]
    [InlineData("http://127.0.0.1:0", "On", true, true)]
    [InlineData("http://127.0.0.1:0", "Off", true, false)]
    public async Task Telemetry_ProvidersExistOnlyWhereSomethingReadsThem(string metricsUrl, string traces, bool meterProvider, bool tracerProvider)
    {
        await using var service = await InferenceServer.StartAsync(RepoPaths.Zoo, new Dictionary<string, string?>
        {
            ["EffServe:Telemetry:MetricsUrl"] = metricsUrl,
            ["EffServe:Telemetry:Traces"] = traces,
        });

        var response = await new GRPCInferenceService.GRPCInferenceServiceClient(service.Channel).ModelInferAsync(Digits.Request(3), cancellationToken: Digits.Ct);

        Assert.Equal(meterProvider, service.Services.GetService<MeterProvider>() is not null);
        Assert.Equal(tracerProvider, service.Services.GetService<OpenTelemetry.Trace.TracerProvider>() is not null);
        Digits.AssertCharged(response);
    }

    [Theory]
    [InlineData("https://127.0.0.1:9464")]
    [InlineData("http://metrics.example:9464")]
    [InlineData("http://localhost:0")]
    [InlineData("http://127.0.0.1:9464/metrics")]
    public async Task MetricsUrl_Unusable_RefusedAtStart(string url)
    {
        await Assert.ThrowsAnyAsync<Exception>(() => InferenceServer.StartAsync(RepoPaths.Zoo, new Dictionary<string, string?> { ["EffServe:Telemetry:MetricsUrl"] = url }));
    }

    private static List<KeyValuePair<string, object?>> TagsOf(MetricPoint point)
    {
        var tags = new List<KeyValuePair<string, object?>>();
        foreach (var tag in point.Tags)
        {
            tags.Add(tag);
        }

        return tags;
    }

    private static bool Matches(MetricPoint point, (string Key, string Value)[] tags)
    {
        var have = TagsOf(point);
        return tags.All(t => have.Any(x => x.Key == t.Key && (string?)x.Value == t.Value));
    }

    private static long HistogramCount(MetricSnapshot metric, params (string Key, string Value)[] tags) =>
        metric.MetricPoints.Where(p => Matches(p, tags)).Sum(p => p.GetHistogramCount());

    private static double Sum(MetricSnapshot metric, params (string Key, string Value)[] tags) =>
        metric.MetricPoints.Where(p => Matches(p, tags)).Sum(p => metric.MetricType switch
        {
            MetricType.LongSum or MetricType.LongSumNonMonotonic => p.GetSumLong(),
            _ => p.GetSumDouble(),
        });

    private static double Gauge(MetricSnapshot metric, params (string Key, string Value)[] tags) =>
        Assert.Single(metric.MetricPoints, p => Matches(p, tags)).GetGaugeLastValueDouble();
}
