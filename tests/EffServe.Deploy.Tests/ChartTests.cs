using EffServe.Deploy.Tests.Support;

namespace EffServe.Deploy.Tests;

/// <summary>The chart linted, rendered, checked against Kubernetes schemas and our rules, for every value set.</summary>
public sealed class ChartTests
{
    private static readonly string[] s_bothModels = ["digits", "shapes"];

    public static TheoryData<Deployment, string[]> ValueSets => new()
    {
        { new Deployment("default", s_bothModels, [], null), [] },
        { new Deployment("cpu-only", s_bothModels, [], null), ["ci/cpu-values.yaml"] },
        { new Deployment("gpu", s_bothModels, ["shapes"], null), ["ci/gpu-values.yaml"] },
        { new Deployment("autoscaling-keda", s_bothModels, [], "ScaledObject"), ["ci/autoscaling-keda-values.yaml"] },
        { new Deployment("autoscaling-hpa", s_bothModels, [], "HorizontalPodAutoscaler"), ["ci/autoscaling-hpa-values.yaml"] },
        { new Deployment("extras", s_bothModels, [], null), ["ci/extras-values.yaml"] },
    };

    private static string[] Files(string[] valueFiles) => [.. valueFiles.Select(f => Path.Combine(Tools.Chart, f))];

    [Theory]
    [MemberData(nameof(ValueSets))]
    public async Task Lint_ValueSet_Passes(Deployment deployment, string[] valueFiles)
    {
        var args = new List<string> { "lint", Tools.Chart, "--strict" };
        foreach (var file in Files(valueFiles))
        {
            args.AddRange(["-f", file]);
        }

        var lint = await Tools.RunAsync(Tools.Helm, args, TimeSpan.FromMinutes(1));

        Assert.True(lint.ExitCode == 0, $"helm lint ({deployment}) failed:\n{lint.All}");
    }

    [Theory]
    [MemberData(nameof(ValueSets))]
    public async Task Template_ValueSet_MatchesKubernetesSchemas(Deployment deployment, string[] valueFiles)
    {
        var rendered = await RenderToFileAsync(deployment, valueFiles);

        var check = await Tools.ValidateSchemasAsync(rendered);

        Assert.True(check.ExitCode == 0, $"Rendered objects ({deployment}) do not match their schemas:\n{check.All}");
        Assert.Contains(" 0 invalid", check.Output, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(ValueSets))]
    public async Task Template_ValueSet_FollowsTheRules(Deployment deployment, string[] valueFiles)
    {
        var manifest = Manifest.Parse(File.ReadAllText(await RenderToFileAsync(deployment, valueFiles)));

        var problems = Rules.Check(manifest, deployment);

        Assert.True(problems.Count == 0, $"{deployment}:\n{string.Join('\n', problems)}");
    }

    [Fact]
    public async Task Template_GpuValueSet_MountsTheZooVolumeAtTheZooPath()
    {
        var manifest = Manifest.Parse(File.ReadAllText(await RenderToFileAsync(new Deployment("gpu", s_bothModels, ["shapes"], null), ["ci/gpu-values.yaml"])));

        var pod = manifest.Find("Deployment", "effserve-shapes")!["spec"]!["template"]!["spec"]!;
        var mount = pod["containers"]![0]!["volumeMounts"]!.AsArray().Single(m => (string?)m!["name"] == "zoo")!;
        Assert.Equal("/zoo", (string?)mount["mountPath"]);
        Assert.Equal("true", (string?)mount["readOnly"]);
        Assert.Equal("effserve-zoo", (string?)pod["volumes"]!.AsArray().Single(v => (string?)v!["name"] == "zoo")!["persistentVolumeClaim"]!["claimName"]);
        // digits keeps the zoo baked into the image: no zoo volume.
        Assert.DoesNotContain(manifest.Find("Deployment", "effserve-digits")!["spec"]!["template"]!["spec"]!["volumes"]!.AsArray(), v => (string?)v!["name"] == "zoo");
    }

    [Fact]
    public async Task Template_CpuValueSet_MapsAuthRateLimitsAndRedisToTheServicesSettings()
    {
        var manifest = Manifest.Parse(File.ReadAllText(await RenderToFileAsync(new Deployment("cpu-only", s_bothModels, [], null), ["ci/cpu-values.yaml"])));

        var gateway = System.Text.Json.Nodes.JsonNode.Parse((string)manifest.Find("ConfigMap", "effserve-gateway")!["data"]!["appsettings.Production.json"]!)!;
        Assert.Equal("team-a", (string?)gateway["EffServe"]!["Gateway"]!["Models"]!["digits"]!["AllowedTenants"]![0]);
        Assert.Equal(100, (int)gateway["EffServe"]!["Gateway"]!["Door"]!["RequestsPerSecond"]!);
        Assert.Equal(20, (int)gateway["EffServe"]!["Gateway"]!["Door"]!["Burst"]!);
        Assert.Equal("team-a", (string?)manifest.Find("Secret", "effserve-gateway-auth")!["stringData"]!["EffServe__Gateway__Door__ApiKeys__demo-key-123"]);
        Assert.Equal("effserve-redis.effserve.svc.cluster.local:6379,abortConnect=false", (string?)manifest.Find("Secret", "effserve-redis-connection")!["stringData"]!["connectionString"]);
        var env = manifest.Find("Deployment", "effserve-digits")!["spec"]!["template"]!["spec"]!["containers"]![0]!["env"]!.AsArray();
        Assert.Contains(env, e => (string?)e!["name"] == "ConnectionStrings__redis" && (string?)e["valueFrom"]!["secretKeyRef"]!["name"] == "effserve-redis-connection");
        Assert.NotNull(manifest.Find("ServiceMonitor", "effserve"));
    }

    [Theory]
    [InlineData(false, false, null, null)]
    [InlineData(true, false, "http://collector:4317", null)]
    [InlineData(true, true, "http://collector:4317", "prometheus,otlp")]
    public async Task Template_Otlp_SetsTheCollectorAndPushesMetricsOnlyWhenAsked(bool endpoint, bool metrics, string? expectedEndpoint, string? expectedExporters)
    {
        string[] sets = [.. endpoint ? ["telemetry.otlpEndpoint=http://collector:4317"] : Array.Empty<string>(), $"telemetry.otlpMetrics={(metrics ? "true" : "false")}"];
        var rendered = await Tools.TemplateAsync([], sets);
        Assert.True(rendered.ExitCode == 0, rendered.All);
        var manifest = Manifest.Parse(rendered.Output);

        foreach (var name in new[] { "effserve-gateway", "effserve-digits" })
        {
            var env = manifest.Find("Deployment", name)!["spec"]!["template"]!["spec"]!["containers"]![0]!["env"]!.AsArray();
            string? Value(string variable) => (string?)env.SingleOrDefault(e => (string?)e!["name"] == variable)?["value"];
            Assert.Equal(expectedEndpoint, Value("OTEL_EXPORTER_OTLP_ENDPOINT"));
            Assert.Equal(expectedExporters, Value("OTEL_METRICS_EXPORTER"));
        }
    }

    [Fact]
    public async Task Template_Default_ShipsTheDashboard()
    {
        var rendered = await Tools.TemplateAsync([]);
        var manifest = Manifest.Parse(rendered.Output);

        var dashboard = manifest.Find("ConfigMap", "effserve-dashboard");

        Assert.NotNull(dashboard);
        Assert.Equal("1", Manifest.Label(dashboard, "grafana_dashboard"));
        Assert.Equal(File.ReadAllText(Path.Combine(Tools.Chart, "dashboards", "effserve.json")), (string?)dashboard["data"]!["effserve.json"]);
    }

    internal static async Task<string> RenderToFileAsync(Deployment deployment, string[] valueFiles)
    {
        var rendered = await Tools.TemplateAsync(Files(valueFiles));
        Assert.True(rendered.ExitCode == 0, $"helm template ({deployment}) failed:\n{rendered.All}");
        var path = Path.Combine(Path.GetTempPath(), $"effserve-chart-{deployment.Name}-{Guid.NewGuid():N}.yaml");
        await File.WriteAllTextAsync(path, rendered.Output, TestContext.Current.CancellationToken);
        return path;
    }
}
