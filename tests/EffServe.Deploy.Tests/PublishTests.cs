using System.Diagnostics;
using System.Text.Json.Nodes;
using EffServe.Contracts.Inference;
using EffServe.Deploy.Tests.Support;
using EffServe.Testing;
using Google.Protobuf;
using Grpc.Net.Client;

namespace EffServe.Deploy.Tests;

/// <summary>
/// What the images ship: `make publish` output of the gateway and the inference service, started as
/// the containers start them (the chart's appsettings.Production.json beside the published
/// appsettings.json, Production environment), with only the addresses changed to loopback; then
/// ServerReady and ModelInfer through the gateway.
/// </summary>
[Trait("Category", "Publish")]
public sealed class PublishTests
{
    [Fact]
    public async Task PublishedServices_WithTheChartsSettings_StartAndServeThroughTheGateway()
    {
        var ct = TestContext.Current.CancellationToken;
        var publish = await Tools.RunAsync("make", ["publish"], TimeSpan.FromMinutes(10));
        Assert.True(publish.ExitCode == 0, $"make publish failed:\n{publish.All}");

        var published = Path.Combine(RepoPaths.Root, "artifacts", "publish");
        var objects = Manifest.Parse(File.ReadAllText(Path.Combine(RepoPaths.Root, "k8s", "base", "resources.yaml")));
        var inferencePort = LoopbackPorts.Unused();
        var gatewayPort = LoopbackPorts.Unused();

        await using var inference = StartPublished(Path.Combine(published, "inference"), "EffServe.Inference", SettingsOf(objects, "effserve-digits"), new()
        {
            ["Urls"] = $"http://127.0.0.1:{inferencePort}",
            ["EffServe__Inference__ZooPath"] = RepoPaths.Zoo,
            ["EffServe__Inference__Models__1"] = "shapes",
            ["EffServe__Telemetry__MetricsUrl"] = "http://127.0.0.1:0",
        });
        await using var gateway = StartPublished(Path.Combine(published, "gateway"), "EffServe.Gateway", SettingsOf(objects, "effserve-gateway"), new()
        {
            ["Urls"] = $"http://127.0.0.1:{gatewayPort}",
            ["EffServe__Gateway__Models__digits__DnsNames__0"] = $"127.0.0.1:{inferencePort}",
            ["EffServe__Gateway__Models__shapes__DnsNames__0"] = $"127.0.0.1:{inferencePort}",
            ["EffServe__Telemetry__MetricsUrl"] = "http://127.0.0.1:0",
        });

        using var channel = GrpcChannel.ForAddress($"http://127.0.0.1:{gatewayPort}");
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(channel);
        var ready = false;
        var giveUp = Stopwatch.StartNew();
        while (!ready && giveUp.Elapsed < TimeSpan.FromMinutes(2))
        {
            Assert.False(inference.Process.HasExited, $"The published inference service exited:\n{inference.Log}");
            Assert.False(gateway.Process.HasExited, $"The published gateway exited:\n{gateway.Log}");
            try
            {
                ready = (await client.ServerReadyAsync(new ServerReadyRequest(), cancellationToken: ct)).Ready;
            }
            catch (Grpc.Core.RpcException)
            {
                // not listening yet
            }

            if (!ready)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(250), ct);
            }
        }

        Assert.True(ready, $"The gateway never became ready.\ngateway:\n{gateway.Log}\ninference:\n{inference.Log}");
        var request = new ModelInferRequest
        {
            ModelName = "digits",
            Inputs = { new ModelInferRequest.Types.InferInputTensor { Name = "image", Datatype = "FP32", Shape = { 1, 1, 8, 8 } } },
            RawInputContents = { ByteString.CopyFrom(new byte[64 * sizeof(float)]) },
        };
        var response = await client.ModelInferAsync(request, cancellationToken: ct);
        Assert.Equal("digits", response.ModelName);
        Assert.Equal(10 * sizeof(float), response.RawOutputContents[0].Length);
    }

    private static string SettingsOf(Manifest objects, string configMap) =>
        (string?)objects.Find("ConfigMap", configMap)?["data"]?["appsettings.Production.json"]
        ?? throw new InvalidOperationException($"k8s/base has no ConfigMap {configMap} with appsettings.Production.json.");

    /// <summary>Starts a published service in a folder laid out like the image's /app: its appsettings.json and the chart's appsettings.Production.json.</summary>
    private static PublishedProcess StartPublished(string folder, string executable, string productionSettings, Dictionary<string, string> environment)
    {
        var contentRoot = Directory.CreateTempSubdirectory("effserve-published-").FullName;
        File.Copy(Path.Combine(folder, "appsettings.json"), Path.Combine(contentRoot, "appsettings.json"));
        File.WriteAllText(Path.Combine(contentRoot, "appsettings.Production.json"), JsonNode.Parse(productionSettings)!.ToJsonString());
        var start = new ProcessStartInfo(Path.Combine(folder, executable))
        {
            WorkingDirectory = contentRoot,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.Environment["DOTNET_ENVIRONMENT"] = "Production";
        start.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        foreach (var (key, value) in environment)
        {
            start.Environment[key] = value;
        }

        return new PublishedProcess(Process.Start(start) ?? throw new InvalidOperationException($"Could not start {executable}."), contentRoot);
    }

    private sealed class PublishedProcess : IAsyncDisposable
    {
        private readonly System.Text.StringBuilder _log = new();
        private readonly string _contentRoot;

        public PublishedProcess(Process process, string contentRoot)
        {
            Process = process;
            _contentRoot = contentRoot;
            process.OutputDataReceived += (_, e) => Append(e.Data);
            process.ErrorDataReceived += (_, e) => Append(e.Data);
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
        }

        public Process Process { get; }

        public string Log
        {
            get
            {
                lock (_log)
                {
                    return _log.ToString();
                }
            }
        }

        private void Append(string? line)
        {
            lock (_log)
            {
                _log.AppendLine(line);
            }
        }

        public async ValueTask DisposeAsync()
        {
            if (!Process.HasExited)
            {
                Process.Kill(entireProcessTree: true);
                await Process.WaitForExitAsync(CancellationToken.None);
            }

            Process.Dispose();
            Directory.Delete(_contentRoot, recursive: true);
        }
    }
}
