using System.Text.Json.Nodes;

namespace EffServe.Deploy.Tests.Support;

/// <summary>What a value set should deploy.</summary>
/// <param name="Name">The value set's name in test output.</param>
/// <param name="Models">Every model of the values (each needs its Deployment, Service, PDB and, when scaled, scaler).</param>
/// <param name="GpuModels">Those on the GPU pool.</param>
/// <param name="Scaler">ScaledObject, HorizontalPodAutoscaler, or null when autoscaling is off.</param>
public sealed record Deployment(string Name, string[] Models, string[] GpuModels, string? Scaler)
{
    public const string Prefix = "effserve";
    public const string Namespace = "effserve";

    public override string ToString() => Name;
}

/// <summary>
/// EffServe's own rules for what it deploys: every container has resources, probes, runs as non-root
/// on a read-only root filesystem; standard labels on everything; every model has its Deployment,
/// headless Service, PodDisruptionBudget, configuration and scaler; only the gateway may reach the
/// model services; GPU models ask for a GPU on the GPU pool. Returns every broken rule.
/// </summary>
public static class Rules
{
    private static readonly string[] s_standardLabels =
    [
        "app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component",
        "app.kubernetes.io/part-of", "app.kubernetes.io/version", "app.kubernetes.io/managed-by",
    ];

    public static List<string> Check(Manifest manifest, Deployment expected)
    {
        var problems = new List<string>();
        foreach (var o in manifest.Objects)
        {
            var missing = s_standardLabels.Where(l => Manifest.Label(o, l).Length == 0).ToList();
            if (missing.Count > 0)
            {
                problems.Add($"{Manifest.Kind(o)} {Manifest.Name(o)} lacks the labels {string.Join(", ", missing)}.");
            }
        }

        foreach (var deployment in manifest.OfKind("Deployment"))
        {
            CheckPod(deployment, problems);
        }

        var served = manifest.OfKind("Deployment").Select(d => Manifest.Label(d, "effserve.io/model")).Where(m => m.Length > 0).Order().ToArray();
        if (!served.SequenceEqual(expected.Models.Order()))
        {
            problems.Add($"Model Deployments are [{string.Join(", ", served)}]; the values have [{string.Join(", ", expected.Models.Order())}].");
        }

        var gatewaySettings = GatewaySettings(manifest, problems);
        foreach (var model in expected.Models)
        {
            CheckModel(manifest, expected, model, gatewaySettings, problems);
        }

        CheckNetworkPolicy(manifest, problems);
        return problems;
    }

    private static void CheckPod(JsonObject deployment, List<string> problems)
    {
        var name = Manifest.Name(deployment);
        var pod = deployment["spec"]?["template"];
        var podNonRoot = (string?)pod?["spec"]?["securityContext"]?["runAsNonRoot"] == "true";
        var matchLabels = deployment["spec"]?["selector"]?["matchLabels"]?.AsObject() ?? [];
        foreach (var (key, value) in matchLabels)
        {
            if ((string?)pod?["metadata"]?["labels"]?[key] != (string?)value)
            {
                problems.Add($"Deployment {name}: the pod template lacks its selector's label {key}.");
            }
        }

        foreach (var container in pod?["spec"]?["containers"]?.AsArray() ?? [])
        {
            var where = $"Deployment {name} container {(string?)container?["name"]}";
            foreach (var path in new[] { "requests.cpu", "requests.memory", "limits.cpu", "limits.memory" })
            {
                var parts = path.Split('.');
                if (container?["resources"]?[parts[0]]?[parts[1]] is null)
                {
                    problems.Add($"{where} has no resources.{path}.");
                }
            }

            foreach (var probe in new[] { "startupProbe", "livenessProbe", "readinessProbe" })
            {
                if (container?[probe] is null)
                {
                    problems.Add($"{where} has no {probe}.");
                }
            }

            var security = container?["securityContext"];
            if (!podNonRoot && (string?)security?["runAsNonRoot"] != "true")
            {
                problems.Add($"{where} may run as root (runAsNonRoot is not true).");
            }

            if ((string?)security?["readOnlyRootFilesystem"] != "true")
            {
                problems.Add($"{where} has a writable root filesystem.");
            }

            if ((string?)security?["allowPrivilegeEscalation"] != "false")
            {
                problems.Add($"{where} allows privilege escalation.");
            }
        }
    }

    private static JsonNode? GatewaySettings(Manifest manifest, List<string> problems)
    {
        var config = manifest.Find("ConfigMap", $"{Deployment.Prefix}-gateway");
        var json = (string?)config?["data"]?["appsettings.Production.json"];
        if (json is null)
        {
            problems.Add("The gateway's ConfigMap with appsettings.Production.json is missing.");
            return null;
        }

        return JsonNode.Parse(json);
    }

    private static void CheckModel(Manifest manifest, Deployment expected, string model, JsonNode? gatewaySettings, List<string> problems)
    {
        var name = $"{Deployment.Prefix}-{model}";
        var deployment = manifest.Find("Deployment", name);
        var service = manifest.Find("Service", name);
        if (deployment is null)
        {
            problems.Add($"Model {model} has no Deployment {name}.");
            return;
        }

        if (service is null || (string?)service["spec"]?["clusterIP"] != "None")
        {
            problems.Add($"Model {model} has no headless Service {name}.");
        }

        var selector = deployment["spec"]?["selector"]?["matchLabels"]?.ToJsonString();
        if (manifest.Find("PodDisruptionBudget", name) is not { } pdb || pdb["spec"]?["selector"]?["matchLabels"]?.ToJsonString() != selector)
        {
            problems.Add($"Model {model} has no PodDisruptionBudget {name} selecting its pods.");
        }

        if (service is not null && service["spec"]?["selector"]?.ToJsonString() != selector)
        {
            problems.Add($"The Service {name} does not select exactly the Deployment's pods.");
        }

        var container = deployment["spec"]?["template"]?["spec"]?["containers"]?[0];
        if ((string?)container?["readinessProbe"]?["grpc"]?["service"] != model)
        {
            problems.Add($"Model {model}: readiness must ask grpc.health.v1 for \"{model}\".");
        }

        if (container?["startupProbe"]?["grpc"] is null || container?["livenessProbe"]?["grpc"] is null)
        {
            problems.Add($"Model {model}: startup and liveness must be gRPC health probes.");
        }

        var settings = (string?)manifest.Find("ConfigMap", name)?["data"]?["appsettings.Production.json"] is { } s ? JsonNode.Parse(s) : null;
        if (string.IsNullOrEmpty((string?)settings?["EffServe"]?["Inference"]?["ZooPath"]) || (string?)settings?["EffServe"]?["Inference"]?["Models"]?[0] != model)
        {
            problems.Add($"Model {model}: its ConfigMap must set EffServe:Inference:ZooPath and serve exactly {model}.");
        }

        var grpcPort = (string?)service?["spec"]?["ports"]?.AsArray().SingleOrDefault(p => (string?)p?["name"] == "grpc")?["port"] ?? "8001";
        var dnsName = $"{name}.{Deployment.Namespace}.svc.cluster.local:{grpcPort}";
        if ((string?)gatewaySettings?["EffServe"]?["Gateway"]?["Models"]?[model]?["DnsNames"]?[0] != dnsName)
        {
            problems.Add($"The gateway does not route {model} to {dnsName}.");
        }

        CheckPool(model, expected.GpuModels.Contains(model), container, deployment, problems);
        CheckScaler(manifest, expected, model, name, deployment, problems);
    }

    private static void CheckPool(string model, bool gpu, JsonNode? container, JsonObject deployment, List<string> problems)
    {
        var podSpec = deployment["spec"]?["template"]?["spec"];
        var gpuLimit = (string?)container?["resources"]?["limits"]?["nvidia.com/gpu"];
        var image = (string?)container?["image"] ?? "";
        if (!gpu)
        {
            if (gpuLimit is not null || image.Contains("gpu", StringComparison.Ordinal))
            {
                problems.Add($"Model {model} is on the cpu pool but asks for a GPU or the GPU image.");
            }

            return;
        }

        if (!int.TryParse(gpuLimit, out var gpus) || gpus < 1)
        {
            problems.Add($"Model {model} is on the gpu pool without an nvidia.com/gpu limit.");
        }

        if (!image.Contains("inference-gpu", StringComparison.Ordinal))
        {
            problems.Add($"Model {model} is on the gpu pool but runs {image}, not the GPU image.");
        }

        if (podSpec?["nodeSelector"] is not JsonObject { Count: > 0 })
        {
            problems.Add($"Model {model} is on the gpu pool without a nodeSelector.");
        }

        if (podSpec?["tolerations"]?.AsArray().Any(t => (string?)t?["key"] == "nvidia.com/gpu") != true)
        {
            problems.Add($"Model {model} is on the gpu pool without a toleration of nvidia.com/gpu.");
        }
    }

    private static void CheckScaler(Manifest manifest, Deployment expected, string model, string name, JsonObject deployment, List<string> problems)
    {
        var scalers = manifest.OfKind("ScaledObject").Concat(manifest.OfKind("HorizontalPodAutoscaler")).Where(s => Manifest.Name(s) == name).ToList();
        if (expected.Scaler is null)
        {
            if (scalers.Count > 0)
            {
                problems.Add($"Model {model} has a scaler though autoscaling is off.");
            }

            return;
        }

        if (deployment["spec"]?["replicas"] is not null)
        {
            problems.Add($"Model {model}: a scaled Deployment must leave replicas to its scaler.");
        }

        var scaler = scalers.SingleOrDefault(s => Manifest.Kind(s) == expected.Scaler);
        if (scaler is null || (string?)scaler["spec"]?["scaleTargetRef"]?["name"] != name)
        {
            problems.Add($"Model {model} has no {expected.Scaler} targeting {name}.");
            return;
        }

        var query = expected.Scaler == "ScaledObject"
            ? (string?)scaler["spec"]?["triggers"]?[0]?["metadata"]?["query"]
            : (string?)scaler["metadata"]?["annotations"]?["effserve.io/query"];
        if (query is null || !query.Contains($"effserve_load_per_second{{model=\"{model}\"", StringComparison.Ordinal) || !query.Contains($"effserve_capacity_per_second{{model=\"{model}\"", StringComparison.Ordinal))
        {
            problems.Add($"Model {model}: the scaler's query does not read {model}'s load and capacity: {query}");
        }
    }

    private static void CheckNetworkPolicy(Manifest manifest, List<string> problems)
    {
        var policies = manifest.OfKind("NetworkPolicy")
            .Where(p => (string?)p["spec"]?["podSelector"]?["matchLabels"]?["app.kubernetes.io/component"] == "inference")
            .ToList();
        if (policies.Count == 0)
        {
            problems.Add("No NetworkPolicy guards the model services.");
            return;
        }

        foreach (var rule in policies.SelectMany(p => p["spec"]?["ingress"]?.AsArray() ?? []))
        {
            var opensGrpc = rule?["ports"]?.AsArray().Any(p => (string?)p?["port"] is "grpc" or "8001") ?? true;
            if (!opensGrpc)
            {
                continue;
            }

            var from = rule?["from"]?.AsArray();
            if (from is null || from.Count == 0 || from.Any(peer => (string?)peer?["podSelector"]?["matchLabels"]?["app.kubernetes.io/component"] != "gateway" || peer?["namespaceSelector"] is not null))
            {
                problems.Add("A NetworkPolicy lets something other than the gateway reach the model services' gRPC port.");
            }
        }
    }
}
