using System.Text.Json.Nodes;
using EffServe.Deploy.Tests.Support;

namespace EffServe.Deploy.Tests;

/// <summary>Each chart value rendered with a non-default setting, and the objects it must reach checked.</summary>
public sealed class ChartValuesTests
{
    private static async Task<Manifest> RenderAsync(params string[] sets)
    {
        var rendered = await Tools.TemplateAsync([], sets);
        Assert.True(rendered.ExitCode == 0, rendered.All);
        return Manifest.Parse(rendered.Output);
    }

    private static async Task<Manifest> RenderFileAsync(string valuesFile, params string[] sets)
    {
        var rendered = await Tools.TemplateAsync([Path.Combine(Tools.Chart, valuesFile)], sets);
        Assert.True(rendered.ExitCode == 0, rendered.All);
        return Manifest.Parse(rendered.Output);
    }

    private static JsonNode PodSpec(Manifest manifest, string deployment) =>
        manifest.Find("Deployment", deployment)!["spec"]!["template"]!["spec"]!;

    private static JsonNode PodMetadata(Manifest manifest, string deployment) =>
        manifest.Find("Deployment", deployment)!["spec"]!["template"]!["metadata"]!;

    private static JsonNode Container(Manifest manifest, string deployment, string name) =>
        PodSpec(manifest, deployment)["containers"]!.AsArray().Single(c => (string?)c!["name"] == name)!;

    private static string? Port(JsonNode container, string name) =>
        (string?)container["ports"]!.AsArray().Single(p => (string?)p!["name"] == name)!["containerPort"];

    private static string? ServicePort(JsonNode service, string name) =>
        (string?)service["spec"]!["ports"]!.AsArray().Single(p => (string?)p!["name"] == name)!["port"];

    private static JsonNode Settings(Manifest manifest, string configMap) =>
        JsonNode.Parse((string)manifest.Find("ConfigMap", configMap)!["data"]!["appsettings.Production.json"]!)!;

    /// <summary>NOTES.txt rendered like helm install prints it (helm 3.6's template has no NOTES output): a copy of the chart renders it into a ConfigMap.</summary>
    internal static Task<string> RenderNotesAsync(params string[] sets) => RenderNotesOnAsync(Tools.KubeVersion, sets);

    internal static async Task<string> RenderNotesOnAsync(string kubeVersion, params string[] sets)
    {
        var copy = Path.Combine(Path.GetTempPath(), $"effserve-notes-{Guid.NewGuid():N}", "effserve");
        CopyDirectory(Tools.Chart, copy);
        File.Copy(Path.Combine(copy, "templates", "NOTES.txt"), Path.Combine(copy, "notes.txt"));
        File.Delete(Path.Combine(copy, "templates", "NOTES.txt"));
        await File.WriteAllTextAsync(
            Path.Combine(copy, "templates", "notes.yaml"),
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n  notes: |\n{{ tpl (.Files.Get \"notes.txt\") . | indent 4 }}\n",
            TestContext.Current.CancellationToken);
        var args = new List<string> { "template", "effserve", copy, "--namespace", "effserve", "--kube-version", kubeVersion, "--show-only", "templates/notes.yaml" };
        foreach (var set in sets)
        {
            args.AddRange(["--set", set]);
        }

        var rendered = await Tools.RunAsync(Tools.Helm, args, TimeSpan.FromMinutes(1));
        Directory.Delete(Path.GetDirectoryName(copy)!, recursive: true);
        Assert.True(rendered.ExitCode == 0, rendered.All);
        return (string)Manifest.Parse(rendered.Output).Find("ConfigMap", "notes")!["data"]!["notes"]!;
    }

    private static void CopyDirectory(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.GetFiles(from))
        {
            File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
        }

        foreach (var dir in Directory.GetDirectories(from))
        {
            CopyDirectory(dir, Path.Combine(to, Path.GetFileName(dir)));
        }
    }

    // ---- Kubernetes version (the chart renders without --kube-version) ----

    [Theory]
    [InlineData("")]
    [InlineData("ci/cpu-values.yaml")]
    [InlineData("ci/gpu-values.yaml")]
    [InlineData("ci/autoscaling-keda-values.yaml")]
    [InlineData("ci/autoscaling-hpa-values.yaml")]
    [InlineData("ci/extras-values.yaml")]
    public async Task Template_WithoutKubeVersion_Renders(string valueFile)
    {
        var args = new List<string> { "template", "effserve", Tools.Chart };
        if (valueFile.Length > 0)
        {
            args.AddRange(["-f", Path.Combine(Tools.Chart, valueFile)]);
        }

        var rendered = await Tools.RunAsync(Tools.Helm, args, TimeSpan.FromMinutes(1));

        Assert.True(rendered.ExitCode == 0, rendered.All);
    }

    [Fact]
    public void ChartReadme_SaysWhichKubernetesVersion()
    {
        var readme = File.ReadAllText(Path.Combine(Tools.Chart, "README.md"));

        Assert.Contains("Kubernetes 1.27 or later", readme, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Notes_OnAnOlderCluster_Warn()
    {
        Assert.DoesNotContain("WARNING", await RenderNotesAsync(), StringComparison.Ordinal);

        var notes = await RenderNotesOnAsync("1.26.0");

        Assert.Contains("WARNING: this cluster runs Kubernetes v1.26.0; the chart needs 1.27 or later", notes, StringComparison.Ordinal);
    }

    // ---- Ports: every port value reaches every object that uses it ----

    [Fact]
    public async Task Template_EveryPortValue_ReachesEveryObject()
    {
        string[] sets =
        [
            "ports.grpc=9000", "ports.metrics=9500", "gateway.service.port=9100",
            "ingress.enabled=true", "serviceMonitor.enabled=true", "redis.inChart.enabled=true",
            "autoscaling.enabled=true",
        ];
        var rendered = await Tools.TemplateAsync([], sets);
        Assert.True(rendered.ExitCode == 0, rendered.All);
        var manifest = Manifest.Parse(rendered.Output);

        // No default port is left anywhere (config checksums aside).
        var stale = rendered.Output.Split('\n').Where(l => !l.Contains("checksum/", StringComparison.Ordinal) && (l.Contains("8001", StringComparison.Ordinal) || l.Contains("9464", StringComparison.Ordinal))).ToList();
        Assert.True(stale.Count == 0, $"Default ports left in the rendered chart:\n{string.Join('\n', stale)}");

        // Gateway: container ports, every probe, its settings, its Service.
        var gateway = Container(manifest, "effserve-gateway", "gateway");
        Assert.Equal("9000", Port(gateway, "grpc"));
        Assert.Equal("9500", Port(gateway, "metrics"));
        Assert.Equal("9000", (string?)gateway["readinessProbe"]!["grpc"]!["port"]);
        Assert.Equal("grpc", (string?)gateway["startupProbe"]!["tcpSocket"]!["port"]);
        Assert.Equal("grpc", (string?)gateway["livenessProbe"]!["tcpSocket"]!["port"]);
        var gatewaySettings = Settings(manifest, "effserve-gateway");
        Assert.Equal("http://0.0.0.0:9000", (string?)gatewaySettings["Urls"]);
        Assert.Equal("http://0.0.0.0:9500", (string?)gatewaySettings["EffServe"]!["Telemetry"]!["MetricsUrl"]);
        var gatewayService = manifest.Find("Service", "effserve-gateway")!;
        Assert.Equal("9100", ServicePort(gatewayService, "grpc"));
        Assert.Equal("9500", ServicePort(gatewayService, "metrics"));
        Assert.All(gatewayService["spec"]!["ports"]!.AsArray(), p => Assert.Equal((string?)p!["name"], (string?)p["targetPort"]));

        // Every model: container ports, every probe, its settings, its headless Service, the gateway's route to it.
        foreach (var model in new[] { "digits", "shapes" })
        {
            var name = $"effserve-{model}";
            var inference = Container(manifest, name, "inference");
            Assert.Equal("9000", Port(inference, "grpc"));
            Assert.Equal("9500", Port(inference, "metrics"));
            foreach (var probe in new[] { "startupProbe", "readinessProbe", "livenessProbe" })
            {
                Assert.Equal("9000", (string?)inference[probe]!["grpc"]!["port"]);
            }

            var settings = Settings(manifest, name);
            Assert.Equal("http://0.0.0.0:9000", (string?)settings["Urls"]);
            Assert.Equal("http://0.0.0.0:9500", (string?)settings["EffServe"]!["Telemetry"]!["MetricsUrl"]);
            var service = manifest.Find("Service", name)!;
            Assert.Equal("9000", ServicePort(service, "grpc"));
            Assert.Equal("9500", ServicePort(service, "metrics"));
            Assert.Equal($"{name}.effserve.svc.cluster.local:9000", (string?)gatewaySettings["EffServe"]!["Gateway"]!["Models"]![model]!["DnsNames"]![0]);
        }

        // NetworkPolicies and the ServiceMonitor name ports that the containers and Services carry.
        foreach (var policy in manifest.OfKind("NetworkPolicy").Where(p => Manifest.Name(p) != "effserve-redis"))
        {
            foreach (var port in policy["spec"]!["ingress"]!.AsArray().SelectMany(r => r!["ports"]!.AsArray()))
            {
                Assert.Contains((string?)port!["port"], new[] { "grpc", "metrics" });
            }
        }

        Assert.Equal("metrics", (string?)manifest.Find("ServiceMonitor", "effserve")!["spec"]!["endpoints"]![0]!["port"]);

        // The Ingress and the helm test pod reach the gateway's Service port.
        Assert.Equal("9100", (string?)manifest.Find("Ingress", "effserve-gateway")!["spec"]!["rules"]![0]!["http"]!["paths"]![0]!["backend"]!["service"]!["port"]!["number"]);
        Assert.Contains("-addr=effserve-gateway.effserve.svc.cluster.local:9100", manifest.Find("Pod", "effserve-gateway-test")!["spec"]!["containers"]![0]!["args"]!.AsArray().Select(a => (string?)a));

        // NOTES forward to the gateway's Service port.
        var notes = await RenderNotesAsync(sets);
        Assert.Contains("port-forward service/effserve-gateway 8001:9100", notes, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Template_GatewayReadinessProbe_FollowsTheGrpcPortEvenWhenThePortIsSetInTheProbe()
    {
        var manifest = await RenderAsync("ports.grpc=9000", "gateway.readinessProbe.grpc.port=8001");

        Assert.Equal("9000", (string?)Container(manifest, "effserve-gateway", "gateway")["readinessProbe"]!["grpc"]!["port"]);
    }

    // ---- NOTES ----

    [Fact]
    public async Task Notes_SayToBuildAndPushTheImagesFirst()
    {
        var notes = await RenderNotesAsync("image.registry=registry.example/acme");

        Assert.Contains("build and push them first", notes, StringComparison.Ordinal);
        Assert.Contains("docker build --target gateway", notes, StringComparison.Ordinal);
        Assert.Contains("docker build --target inference", notes, StringComparison.Ordinal);
        Assert.Contains("docker build -f Dockerfile.gpu", notes, StringComparison.Ordinal);
        Assert.Contains("This release pulls registry.example/acme/effserve/gateway:0.1.0 and registry.example/acme/effserve/inference:0.1.0", notes, StringComparison.Ordinal);
        Assert.Contains("grpcurl -plaintext localhost:8001 inference.GRPCInferenceService/ServerReady", notes, StringComparison.Ordinal);
        Assert.Contains("helm test effserve -n effserve", notes, StringComparison.Ordinal);
    }

    // ---- Images ----

    [Fact]
    public async Task Template_ImageValues_SetEveryEffServeImage()
    {
        var manifest = await RenderAsync(
            "image.registry=registry.example/acme", "image.tag=2.0.0", "image.pullPolicy=Always",
            "image.gateway.tag=2.0.1", "image.inference.repository=acme/inference",
            "imagePullSecrets[0].name=regcred", "pools.gpu.enabled=true", "pools.gpu.nodeSelector.gpu=yes",
            "models.shapes.pool=gpu", "models.shapes.gpus=1", "image.inferenceGpu.repository=acme/inference-gpu");

        Assert.Equal("registry.example/acme/effserve/gateway:2.0.1", (string?)Container(manifest, "effserve-gateway", "gateway")["image"]);
        Assert.Equal("registry.example/acme/acme/inference:2.0.0", (string?)Container(manifest, "effserve-digits", "inference")["image"]);
        Assert.Equal("registry.example/acme/acme/inference-gpu:2.0.0", (string?)Container(manifest, "effserve-shapes", "inference")["image"]);
        foreach (var deployment in new[] { "effserve-gateway", "effserve-digits", "effserve-shapes" })
        {
            Assert.Equal("regcred", (string?)PodSpec(manifest, deployment)["imagePullSecrets"]![0]!["name"]);
            Assert.Equal("Always", (string?)PodSpec(manifest, deployment)["containers"]![0]!["imagePullPolicy"]);
        }
    }

    [Fact]
    public async Task Template_EarlierImagesValues_StillWinOverImage()
    {
        var manifest = await RenderAsync(
            "image.registry=new.example", "images.registry=old.example",
            "images.gateway.repository=old/gateway", "images.gateway.tag=0.9.0",
            "images.pullPolicy=Never", "imagePullSecrets[0].name=new-cred", "images.pullSecrets[0].name=old-cred");

        var gateway = Container(manifest, "effserve-gateway", "gateway");
        Assert.Equal("old.example/old/gateway:0.9.0", (string?)gateway["image"]);
        Assert.Equal("Never", (string?)gateway["imagePullPolicy"]);
        Assert.Equal("old-cred", (string?)PodSpec(manifest, "effserve-gateway")["imagePullSecrets"]![0]!["name"]);
        // What images.* leaves unset comes from image.*.
        Assert.Equal("old.example/effserve/inference:0.1.0", (string?)Container(manifest, "effserve-digits", "inference")["image"]);
    }

    [Fact]
    public async Task Template_Default_HasNoPullSecretsAndUsesTheAppVersion()
    {
        var manifest = await RenderAsync();

        Assert.Null(PodSpec(manifest, "effserve-gateway")["imagePullSecrets"]);
        Assert.Equal("effserve/gateway:0.1.0", (string?)Container(manifest, "effserve-gateway", "gateway")["image"]);
        Assert.Equal("IfNotPresent", (string?)Container(manifest, "effserve-gateway", "gateway")["imagePullPolicy"]);
    }

    // ---- Service account, pod labels and annotations ----

    [Fact]
    public async Task Template_ServiceAccountAnnotations_AreOnTheServiceAccount()
    {
        var manifest = await RenderAsync("serviceAccount.annotations.iam\\.example/role=effserve", "serviceAccount.name=serving");

        var account = manifest.Find("ServiceAccount", "serving")!;
        Assert.Equal("effserve", (string?)account["metadata"]!["annotations"]!["iam.example/role"]);
        Assert.Equal("serving", (string?)PodSpec(manifest, "effserve-gateway")["serviceAccountName"]);
        Assert.Equal("serving", (string?)PodSpec(manifest, "effserve-digits")["serviceAccountName"]);
    }

    [Fact]
    public async Task Template_PodLabelsAndAnnotations_ReachEveryPodButNotTheSelectorLabels()
    {
        var manifest = await RenderAsync(
            "podLabels.team=inference", "podLabels.app\\.kubernetes\\.io/component=hijack", "gateway.podLabels.tier=front",
            "modelDefaults.podLabels.tier=models", "models.shapes.podLabels.tier=shapes",
            "podAnnotations.owner=platform", "gateway.podAnnotations.owner=gateway-team");

        var gateway = PodMetadata(manifest, "effserve-gateway");
        Assert.Equal("inference", (string?)gateway["labels"]!["team"]);
        Assert.Equal("front", (string?)gateway["labels"]!["tier"]);
        Assert.Equal("gateway", (string?)gateway["labels"]!["app.kubernetes.io/component"]);
        Assert.Equal("gateway-team", (string?)gateway["annotations"]!["owner"]);
        Assert.NotNull(gateway["annotations"]!["checksum/config"]);
        var digits = PodMetadata(manifest, "effserve-digits");
        Assert.Equal("models", (string?)digits["labels"]!["tier"]);
        Assert.Equal("inference", (string?)digits["labels"]!["team"]);
        Assert.Equal("inference", (string?)digits["labels"]!["app.kubernetes.io/component"]);
        Assert.Equal("platform", (string?)digits["annotations"]!["owner"]);
        Assert.Equal("shapes", (string?)PodMetadata(manifest, "effserve-shapes")["labels"]!["tier"]);
    }

    // ---- Scheduling ----

    [Fact]
    public async Task Template_TopologySpreadAndPriorityClass_ReachThePods()
    {
        var manifest = await RenderFileAsync("ci/extras-values.yaml");

        var gateway = PodSpec(manifest, "effserve-gateway");
        Assert.Equal("effserve-high", (string?)gateway["priorityClassName"]);
        var spread = gateway["topologySpreadConstraints"]![0]!;
        Assert.Equal("topology.kubernetes.io/zone", (string?)spread["topologyKey"]);
        Assert.Equal("gateway", (string?)spread["labelSelector"]!["matchLabels"]!["app.kubernetes.io/component"]);
        foreach (var model in new[] { "digits", "shapes" })
        {
            var pod = PodSpec(manifest, $"effserve-{model}");
            Assert.Equal("effserve-models", (string?)pod["priorityClassName"]);
            Assert.Equal("kubernetes.io/hostname", (string?)pod["topologySpreadConstraints"]![0]!["topologyKey"]);
            Assert.Equal(model, (string?)pod["topologySpreadConstraints"]![0]!["labelSelector"]!["matchLabels"]!["effserve.io/model"]);
        }
    }

    [Fact]
    public async Task Template_TopologySpreadWithItsOwnSelector_IsKept()
    {
        var manifest = await RenderAsync(
            "gateway.topologySpreadConstraints[0].maxSkew=2", "gateway.topologySpreadConstraints[0].topologyKey=zone",
            "gateway.topologySpreadConstraints[0].whenUnsatisfiable=DoNotSchedule",
            "gateway.topologySpreadConstraints[0].labelSelector.matchLabels.custom=yes");

        var spread = PodSpec(manifest, "effserve-gateway")["topologySpreadConstraints"]![0]!;
        Assert.Equal("yes", (string?)spread["labelSelector"]!["matchLabels"]!["custom"]);
        Assert.Null(spread["labelSelector"]!["matchLabels"]!["app.kubernetes.io/component"]);
        Assert.Null(PodSpec(manifest, "effserve-digits")["topologySpreadConstraints"]);
        Assert.Null(PodSpec(manifest, "effserve-digits")["priorityClassName"]);
    }

    // ---- Extra volumes, mounts and sidecars ----

    [Fact]
    public async Task Template_ExtraVolumesMountsAndContainers_ReachThePods()
    {
        var manifest = await RenderFileAsync("ci/extras-values.yaml");

        var gateway = PodSpec(manifest, "effserve-gateway");
        Assert.Equal("effserve-certs", (string?)gateway["volumes"]!.AsArray().Single(v => (string?)v!["name"] == "certs")!["secret"]!["secretName"]);
        Assert.Contains(Container(manifest, "effserve-gateway", "gateway")["volumeMounts"]!.AsArray(), m => (string?)m!["name"] == "certs" && (string?)m["mountPath"] == "/certs");
        Assert.Equal("registry.example/acme/proxy:1.0", (string?)Container(manifest, "effserve-gateway", "proxy")["image"]);
        Assert.Equal(2, gateway["containers"]!.AsArray().Count);
        foreach (var model in new[] { "digits", "shapes" })
        {
            var pod = PodSpec(manifest, $"effserve-{model}");
            Assert.Contains(pod["volumes"]!.AsArray(), v => (string?)v!["name"] == "cache" && v["emptyDir"] is not null);
            Assert.Contains(Container(manifest, $"effserve-{model}", "inference")["volumeMounts"]!.AsArray(), m => (string?)m!["mountPath"] == "/cache");
            Assert.Single(pod["containers"]!.AsArray());
        }
    }

    [Fact]
    public async Task Template_ModelSidecar_OnlyOnThatModel()
    {
        var manifest = await RenderAsync("models.shapes.extraContainers[0].name=agent", "models.shapes.extraContainers[0].image=acme/agent:1");

        Assert.Equal("acme/agent:1", (string?)Container(manifest, "effserve-shapes", "agent")["image"]);
        Assert.Single(PodSpec(manifest, "effserve-digits")["containers"]!.AsArray());
    }

    // ---- Ingress ----

    [Fact]
    public async Task Template_Ingress_OffByDefault()
    {
        var manifest = await RenderAsync();

        Assert.Empty(manifest.OfKind("Ingress"));
    }

    [Fact]
    public async Task Template_Ingress_RoutesTheHostsToTheGatewaysServicePort()
    {
        var manifest = await RenderFileAsync("ci/extras-values.yaml");

        var ingress = manifest.Find("Ingress", "effserve-gateway")!;
        Assert.Equal("nginx", (string?)ingress["spec"]!["ingressClassName"]);
        Assert.Equal("GRPC", (string?)ingress["metadata"]!["annotations"]!["nginx.ingress.kubernetes.io/backend-protocol"]);
        Assert.Equal("effserve-tls", (string?)ingress["spec"]!["tls"]![0]!["secretName"]);
        var rule = ingress["spec"]!["rules"]![0]!;
        Assert.Equal("effserve.example.com", (string?)rule["host"]);
        var path = rule["http"]!["paths"]![0]!;
        Assert.Equal("/", (string?)path["path"]);
        Assert.Equal("Prefix", (string?)path["pathType"]);
        Assert.Equal("effserve-gateway", (string?)path["backend"]!["service"]!["name"]);
        Assert.Equal(ServicePort(manifest.Find("Service", "effserve-gateway")!, "grpc"), (string?)path["backend"]!["service"]!["port"]!["number"]);
        Assert.Equal("9100", (string?)path["backend"]!["service"]!["port"]!["number"]);
    }

    // ---- helm test ----

    [Fact]
    public async Task Template_HelmTest_AsksTheGatewaysHealth()
    {
        var manifest = await RenderAsync();

        var pod = manifest.Find("Pod", "effserve-gateway-test")!;
        Assert.Equal("test", (string?)pod["metadata"]!["annotations"]!["helm.sh/hook"]);
        Assert.Equal("Never", (string?)pod["spec"]!["restartPolicy"]);
        var container = pod["spec"]!["containers"]![0]!;
        Assert.Equal("ghcr.io/grpc-ecosystem/grpc-health-probe:v0.4.40", (string?)container["image"]);
        Assert.Equal(
            ["-addr=effserve-gateway.effserve.svc.cluster.local:8001", "-service=", "-connect-timeout=10s", "-rpc-timeout=10s"],
            container["args"]!.AsArray().Select(a => (string?)a).ToArray());
        Assert.Equal("false", (string?)container["securityContext"]!["allowPrivilegeEscalation"]);
        Assert.NotNull(container["resources"]!["limits"]!["memory"]);
    }

    [Fact]
    public async Task Template_HelmTest_IsConfigurable()
    {
        var manifest = await RenderFileAsync("ci/extras-values.yaml");

        var container = manifest.Find("Pod", "effserve-gateway-test")!["spec"]!["containers"]![0]!;
        Assert.Equal("registry.example/grpc-health-probe:v0.4.40", (string?)container["image"]);
        Assert.Contains("-rpc-timeout=5s", container["args"]!.AsArray().Select(a => (string?)a));
        Assert.Equal("regcred", (string?)manifest.Find("Pod", "effserve-gateway-test")!["spec"]!["imagePullSecrets"]![0]!["name"]);

        var off = await RenderAsync("tests.enabled=false");
        Assert.Empty(off.OfKind("Pod"));
    }
}
