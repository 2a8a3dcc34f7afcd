using System.Diagnostics;
using EffServe.Contracts.Inference;
using Grpc.Core;
using Grpc.Net.Client;

namespace EffServe.GatewayBench;

/// <summary>What one throughput window measured.</summary>
/// <param name="Requests">Calls answered with OK.</param>
/// <param name="Errors">Calls that failed.</param>
/// <param name="Seconds">From the first send to the last answer.</param>
/// <param name="ProxyCpu">CPU seconds of the proxy's processes (0 for direct).</param>
/// <param name="ServiceCpu">CPU seconds of the inference service.</param>
/// <param name="ClientCpu">CPU seconds of this process.</param>
internal sealed record Window(long Requests, long Errors, double Seconds, double ProxyCpu, double ServiceCpu, double ClientCpu)
{
    public double Rate => Requests / Seconds;
}

/// <summary>
/// One way to reach the service (direct, through the gateway, through nginx ...): its channels,
/// created once and warmed, and everything measured through it.
/// </summary>
internal sealed class Arm : IDisposable
{
    private readonly GrpcChannel _channel;
    private readonly List<GrpcChannel> _callerChannels = [];
    private readonly CallOptions _options;

    public Arm(Door door)
    {
        Door = door;
        _channel = GrpcChannel.ForAddress(door.Address);
        Client = new GRPCInferenceService.GRPCInferenceServiceClient(_channel);
        _options = new CallOptions(headers: door.Headers);
    }

    public Door Door { get; }

    public string Name => Door.Name;

    public GRPCInferenceService.GRPCInferenceServiceClient Client { get; }

    /// <summary>Every latency sample of the measured rounds, µs.</summary>
    public List<double> Latencies { get; } = [];

    public List<double> RoundP50 { get; } = [];

    public List<double> RoundP99 { get; } = [];

    /// <summary>Throughput windows per channel mode, one per round, in round order.</summary>
    public Dictionary<ChannelMode, List<Window>> Windows { get; } = new()
    {
        [ChannelMode.Shared] = [],
        [ChannelMode.PerCaller] = [],
    };

    public int WarmupWindows { get; set; }

    public bool WarmupConverged { get; set; }

    public double WarmupLastMedianUs { get; set; }

    public Task<ModelInferResponse> InferAsync(ModelInferRequest request) => InferAsync(Client, request);

    public async Task<ModelInferResponse> InferAsync(GRPCInferenceService.GRPCInferenceServiceClient client, ModelInferRequest request) =>
        await client.ModelInferAsync(request, _options).ConfigureAwait(false);

    /// <summary><paramref name="count"/> clients, each on a channel of its own (created once, then reused), all warmed.</summary>
    public async Task<IReadOnlyList<GRPCInferenceService.GRPCInferenceServiceClient>> CallerClientsAsync(int count, ModelInferRequest warmup)
    {
        while (_callerChannels.Count < count)
        {
            var channel = GrpcChannel.ForAddress(Door.Address);
            _callerChannels.Add(channel);
            await InferAsync(new GRPCInferenceService.GRPCInferenceServiceClient(channel), warmup).ConfigureAwait(false);
        }

        return [.. _callerChannels.Take(count).Select(c => new GRPCInferenceService.GRPCInferenceServiceClient(c))];
    }

    /// <summary>
    /// Warm-up: latency windows of 100 calls, one in flight, until the medians of three in a row
    /// agree within 10% (medians, not totals: on a shared machine one descheduling would reset a
    /// total), at most <paramref name="maxWindows"/>; sets <see cref="WarmupWindows"/> and what follows it.
    /// </summary>
    public async Task WarmUpAsync(IReadOnlyList<ModelInferRequest> requests, int maxWindows = 40)
    {
        var windows = new List<double>();
        while (windows.Count < maxWindows && (windows.Count < 3 || windows.TakeLast(3).Max() > 1.1 * windows.TakeLast(3).Min()))
        {
            var latencies = await LatencyAsync(requests, 100, windows.Count * 100).ConfigureAwait(false);
            windows.Add(Stats.Median(latencies));
        }

        WarmupWindows = windows.Count;
        WarmupConverged = windows.Count >= 3 && windows.TakeLast(3).Max() <= 1.1 * windows.TakeLast(3).Min();
        WarmupLastMedianUs = windows[^1];
    }

    /// <summary>Sends <paramref name="count"/> requests one after the other; the latency of each, µs.</summary>
    public async Task<List<double>> LatencyAsync(IReadOnlyList<ModelInferRequest> requests, int count, int first)
    {
        var latencies = new List<double>(count);
        for (var i = 0; i < count; i++)
        {
            var request = requests[(first + i) % requests.Count];
            var start = Stopwatch.GetTimestamp();
            await InferAsync(request).ConfigureAwait(false);
            latencies.Add(Stopwatch.GetElapsedTime(start).TotalMicroseconds);
        }

        return latencies;
    }

    /// <summary>
    /// Closed loop: every client keeps one request in flight until <paramref name="seconds"/> have
    /// passed; the window ends with the last answer. CPU time of the proxy, the service and this
    /// process is read around it.
    /// </summary>
    public async Task<Window> ThroughputAsync(IReadOnlyList<GRPCInferenceService.GRPCInferenceServiceClient> clients, IReadOnlyList<ModelInferRequest> requests, double seconds, IReadOnlyList<int> servicePids)
    {
        var proxyBefore = ProcStat.CpuSeconds(Door.Pids);
        var serviceBefore = ProcStat.CpuSeconds(servicePids);
        var clientBefore = Environment.CpuUsage.TotalTime;
        var start = Stopwatch.GetTimestamp();
        var end = start + (long)(seconds * Stopwatch.Frequency);

        async Task<(long Ok, long Failed)> CallerAsync(GRPCInferenceService.GRPCInferenceServiceClient client, int offset)
        {
            long ok = 0, failed = 0;
            var i = offset;
            while (Stopwatch.GetTimestamp() < end)
            {
                try
                {
                    await InferAsync(client, requests[i++ % requests.Count]).ConfigureAwait(false);
                    ok++;
                }
                catch (RpcException)
                {
                    failed++;
                }
            }

            return (ok, failed);
        }

        var results = await Task.WhenAll(clients.Select((c, k) => CallerAsync(c, k * 7))).ConfigureAwait(false);
        var elapsed = Stopwatch.GetElapsedTime(start).TotalSeconds;
        var clientCpu = (Environment.CpuUsage.TotalTime - clientBefore).TotalSeconds;
        return new Window(
            results.Sum(r => r.Ok),
            results.Sum(r => r.Failed),
            elapsed,
            ProcStat.CpuSeconds(Door.Pids) - proxyBefore,
            ProcStat.CpuSeconds(servicePids) - serviceBefore,
            clientCpu);
    }

    public void Dispose()
    {
        _channel.Dispose();
        foreach (var channel in _callerChannels)
        {
            channel.Dispose();
        }
    }
}
