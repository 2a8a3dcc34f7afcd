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

/// <summary>The shipped Grafana dashboard asks only for series the service's scrape endpoint serves.</summary>
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
        using (var json = JsonDocument.Parse(dashboard))
        {
            foreach (var panel in json.RootElement.GetProperty("panels").EnumerateArray())
            {
                if (panel.TryGetProperty("targets", out var targets))
                {
                    foreach (var target in targets.EnumerateArray())
                    {
                        queried.UnionWith(SeriesName().Matches(target.GetProperty("expr").GetString()!).Select(m => m.Value));
                    }
                }
            }
        }

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

        using var http = new HttpClient();
        var scraped = await http.GetStringAsync(service.Services.GetRequiredService<MetricsListener>().ScrapeUrl, Digits.Ct);
        var served = SeriesName().Matches(scraped).Select(m => m.Value).ToHashSet(StringComparer.Ordinal);

        Assert.True(queried.Count > 15, $"The dashboard queries only {queried.Count} EffServe series.");
        var missing = queried.Where(name => !served.Contains(name) && !s_notYetEmitted.Contains(name)).ToList();
        Assert.True(missing.Count == 0, $"The dashboard queries series the service does not serve: {string.Join(", ", missing)}.");
    }

    [GeneratedRegex("effserve_[A-Za-z_]+")]
    private static partial Regex SeriesName();
}
