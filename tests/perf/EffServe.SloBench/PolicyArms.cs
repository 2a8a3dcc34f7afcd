using System.Diagnostics;
using EffServe.Contracts.Inference;
using EffServe.GatewayBench;
using Grpc.Core;
using Grpc.Net.Client;

namespace EffServe.SloBench;

/// <summary>One inference service process serving the model under one selection policy.</summary>
internal sealed class PolicyArm(string name, string settings, ChildProcess process, Uri address) : IDisposable
{
    public string Name { get; } = name;

    /// <summary>The selection settings it runs with, for the report.</summary>
    public string Settings { get; } = settings;

    public ChildProcess Process { get; } = process;

    public Uri Address { get; } = address;

    public GrpcChannel Channel { get; } = GrpcChannel.ForAddress(address, new GrpcChannelOptions
    {
        HttpHandler = new SocketsHttpHandler { EnableMultipleHttp2Connections = true, UseProxy = false },
    });

    public void Dispose()
    {
        Channel.Dispose();
        Process.Dispose();
    }
}

/// <summary>The four arms of the SLO benchmark, started together and stopped together.</summary>
internal sealed class PolicyArms : IAsyncDisposable
{
    public const string Adaptive = "slo-aware";
    public const string Baseline = "fixed fp32";

    public static readonly IReadOnlyList<string> Fixed = [Baseline, "fixed int8", "fixed early-exit"];

    private PolicyArms(IReadOnlyList<PolicyArm> all) => All = all;

    public IReadOnlyList<PolicyArm> All { get; }

    /// <summary>Starts one service per policy (EffServe__Selection__* in its environment) and waits until each is ready.</summary>
    public static async Task<PolicyArms> StartAsync(string dll, string root, string model)
    {
        (string Name, Dictionary<string, string> Environment)[] policies =
        [
            (Adaptive, Selection("slo-aware", null, "shed")),
            (Baseline, Selection("fixed", "fp32", null)),
            ("fixed int8", Selection("fixed", "int8", null)),
            ("fixed early-exit", Selection("fixed", "early-exit", null)),
        ];
        var arms = new List<PolicyArm>();
        foreach (var (name, environment) in policies)
        {
            var address = new Uri($"http://127.0.0.1:{Ports.Free()}");
            var process = ChildProcess.Start(name, "dotnet",
            [
                dll,
                "--contentRoot", Path.GetDirectoryName(dll)!,
                "--urls", address.ToString().TrimEnd('/'),
                $"--EffServe:Inference:ZooPath={Path.Combine(root, "zoo")}",
                $"--EffServe:Inference:Models:0={model}",
                "--Logging:LogLevel:Default=Warning",
            ], root, environment);
            arms.Add(new PolicyArm(name, string.Join(", ", environment.Select(e => $"{e.Key}={e.Value}")), process, address));
        }

        var started = new PolicyArms(arms);
        try
        {
            await Task.WhenAll(arms.Select(a => WaitReadyAsync(a, TimeSpan.FromSeconds(120))));
        }
        catch
        {
            await started.DisposeAsync();
            throw;
        }

        return started;
    }

    public ValueTask DisposeAsync()
    {
        foreach (var arm in All)
        {
            arm.Dispose();
        }

        return ValueTask.CompletedTask;
    }

    private static Dictionary<string, string> Selection(string policy, string? variant, string? whenNothingFits)
    {
        var environment = new Dictionary<string, string>(StringComparer.Ordinal) { ["EffServe__Selection__Policy"] = policy };
        if (variant is not null)
        {
            environment["EffServe__Selection__Variant"] = variant;
        }

        if (whenNothingFits is not null)
        {
            environment["EffServe__Selection__WhenNothingFits"] = whenNothingFits;
        }

        return environment;
    }

    private static async Task WaitReadyAsync(PolicyArm arm, TimeSpan timeout)
    {
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(arm.Channel);
        var watch = Stopwatch.StartNew();
        while (watch.Elapsed < timeout)
        {
            if (arm.Process.HasExited)
            {
                throw new BenchException($"the {arm.Name} service exited before it was ready:{Environment.NewLine}{arm.Process.Tail}");
            }

            try
            {
                if ((await client.ServerReadyAsync(new ServerReadyRequest(), deadline: TimeProvider.System.GetUtcNow().UtcDateTime.AddSeconds(2))).Ready)
                {
                    return;
                }
            }
            catch (RpcException)
            {
                // not listening yet
            }

            await Task.Delay(200);
        }

        throw new BenchException($"the {arm.Name} service was not ready within {timeout.TotalSeconds:0} s:{Environment.NewLine}{arm.Process.Tail}");
    }
}
