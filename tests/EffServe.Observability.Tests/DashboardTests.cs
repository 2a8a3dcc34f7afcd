using System.Text.Json;
using System.Text.RegularExpressions;
using EffServe.Contracts.Inference;
using EffServe.Inference.Serving;
using EffServe.Observability.Tests.Support;
using EffServe.ServiceDefaults;
using EffServe.Testing;
using Grpc.Core;
using Microsoft.Extensions.DependencyInjection;

namespace EffServe.Observability.Tests;

/// <summary>The shipped Grafana dashboard asks only for series the service's and the gateway's scrape endpoints serve.</summary>
[Collection(nameof(OneServerAtATime))]
public sealed partial class DashboardTests
{
    /// <summary>Defined now, emitted once the response cache and load shedding exist.</summary>
    private static readonly string[] s_notYetEmitted = ["effserve_cache_hits_total", "effserve_cache_misses_total", "effserve_requests_shed_total"];

    [Fact]
    public async Task Dashboard_EveryEffServeSeriesItQueries_IsScraped()
    {
        var dashboard = await File.ReadAllTextAsync(Path.Combine(RepoPaths.Root, "helm", "effserve", "dashboards", "effserve.json"), Digits.Ct);
        var queried = new SortedSet<string>(StringComparer.Ordinal);
        var panels = new Dictionary<string, (string Description, List<string> Queries)>(StringComparer.Ordinal);
        using (var json = JsonDocument.Parse(dashboard))
        {
            foreach (var panel in json.RootElement.GetProperty("panels").EnumerateArray())
            {
                if (panel.TryGetProperty("targets", out var targets))
                {
                    var queries = targets.EnumerateArray().Select(t => t.GetProperty("expr").GetString()!).ToList();
                    panels[panel.GetProperty("title").GetString()!] = (panel.GetProperty("description").GetString()!, queries);
                    foreach (var query in queries)
                    {
                        queried.UnionWith(SeriesName().Matches(query).Select(m => m.Value));
                    }
                }
            }
        }

        // The gateway: calls and errors by gRPC status, hop latency, replicas in rotation; each
        // panel says it needs the gateway's metrics read.
        string[] gatewayPanels = ["Gateway calls by gRPC status", "Gateway errors by method", "Gateway hop latency", "Replicas in rotation"];
        foreach (var title in gatewayPanels)
        {
            Assert.True(panels.ContainsKey(title), $"No panel '{title}'.");
            Assert.Contains("Needs the gateway's metrics read", panels[title].Description, StringComparison.Ordinal);
        }

        Assert.Contains(panels["Gateway calls by gRPC status"].Queries, q => q.Contains("sum by (rpc_grpc_status_code) (rate(effserve_gateway_request_duration_seconds_count", StringComparison.Ordinal));
        Assert.Equal(3, panels["Gateway hop latency"].Queries.Count(q => q.StartsWith("histogram_quantile(", StringComparison.Ordinal) && q.Contains("effserve_gateway_request_duration_seconds_bucket", StringComparison.Ordinal)));
        Assert.Contains(panels["Replicas in rotation"].Queries, q => q.Contains("effserve_gateway_replicas{", StringComparison.Ordinal) && q.Contains("state=\"in_rotation\"", StringComparison.Ordinal));

        // A panel that is empty by default says which switch fills it.
        Assert.Contains("Enabled = true", panels["Cache"].Description, StringComparison.Ordinal);

        // Idle power is the machine's, reported by every process on it: taken once per host, never summed over processes.
        var idle = panels.Values.SelectMany(p => p.Queries).Where(q => q.Contains("effserve_power_idle_watts", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(idle);
        Assert.All(idle, q => Assert.Contains("max by (host, device, source) (effserve_power_idle_watts)", q, StringComparison.Ordinal));

        await using var service = await InferenceServer.StartAsync(RepoPaths.Zoo, new Dictionary<string, string?>
        {
            ["EffServe:Telemetry:MetricsUrl"] = "http://127.0.0.1:0",
            ["EffServe:Inference:MaxConcurrentRuns"] = "1",
            ["EffServe:Selection:WhenNothingFits"] = "fastest", // a budget nothing meets is served late, its SLO missed
        });
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(service.Channel);
        await client.ModelInferAsync(Digits.Request(0, batch: 4, threshold: 0.9, sloMs: 1000), cancellationToken: Digits.Ct);
        await client.ModelInferAsync(Digits.Request(4, sloMs: 0.0001), cancellationToken: Digits.Ct);
        var slots = service.Services.GetRequiredService<RunSlots>();
        await slots.WaitAsync(Digits.Ct);
        try
        {
            var late = Digits.Request(0);
            late.Parameters.Add("timeout", new InferParameter { Int64Param = 20_000 });
            await Assert.ThrowsAsync<RpcException>(() => client.ModelInferAsync(late, cancellationToken: Digits.Ct).ResponseAsync);
        }
        finally
        {
            slots.Release();
        }

        // The gateway in front of the service, with its own scrape listener, after calls through it.
        await using var gateway = await GatewayServer.StartAsync(new Dictionary<string, string?>
        {
            ["EffServe:Gateway:Models:digits:Destinations:0"] = service.Address.GetLeftPart(UriPartial.Authority),
            ["EffServe:Gateway:HealthCheckInterval"] = "00:00:00.200",
            ["EffServe:Telemetry:MetricsUrl"] = "http://127.0.0.1:0",
        });
        await gateway.WaitUntilServingAsync(Digits.Model);
        await new GRPCInferenceService.GRPCInferenceServiceClient(gateway.Channel).ModelInferAsync(Digits.Request(1), cancellationToken: Digits.Ct);

        using var http = new HttpClient();
        var scraped = await http.GetStringAsync(service.Services.GetRequiredService<MetricsListener>().ScrapeUrl, Digits.Ct)
            + await http.GetStringAsync(gateway.Services.GetRequiredService<MetricsListener>().ScrapeUrl, Digits.Ct);
        var served = SeriesName().Matches(scraped).Select(m => m.Value).ToHashSet(StringComparer.Ordinal);
        var inRotation = scraped.Split('\n').Single(l => l.StartsWith("effserve_gateway_replicas{", StringComparison.Ordinal)
            && l.Contains("effserve_model=\"digits\"", StringComparison.Ordinal) && l.Contains("state=\"in_rotation\"", StringComparison.Ordinal));
        Assert.Equal("1", inRotation[(inRotation.IndexOf('}', StringComparison.Ordinal) + 2)..].Split(' ')[0]);

        Assert.True(queried.Count > 15, $"The dashboard queries only {queried.Count} EffServe series.");
        var missing = queried.Where(name => !served.Contains(name) && !s_notYetEmitted.Contains(name)).ToList();
        Assert.True(missing.Count == 0, $"The dashboard queries series the service does not serve: {string.Join(", ", missing)}.");
    }

    [GeneratedRegex("effserve_[A-Za-z_]+")]
    private static partial Regex SeriesName();
}
