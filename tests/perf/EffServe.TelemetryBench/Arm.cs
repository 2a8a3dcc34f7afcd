using System.Diagnostics;
using EffServe.Contracts.Inference;
using EffServe.GatewayBench;
using Grpc.Core;
using Grpc.Net.Client;

namespace EffServe.TelemetryBench;

/// <summary>One inference service process under test, and how to load it.</summary>
internal sealed class Arm : IDisposable
{
    private readonly GrpcChannel _channel;
    private readonly GRPCInferenceService.GRPCInferenceServiceClient _client;
    private double _energyMj;
    private long _charged;

    public Arm(string name, ChildProcess process, Uri address)
    {
        Name = name;
        Process = process;
        Address = address;
        _channel = GrpcChannel.ForAddress(address, new GrpcChannelOptions
        {
            HttpHandler = new SocketsHttpHandler { EnableMultipleHttp2Connections = true, UseProxy = false },
        });
        _client = new GRPCInferenceService.GRPCInferenceServiceClient(_channel);
    }

    public string Name { get; }

    public ChildProcess Process { get; }

    public Uri Address { get; }

    public List<double> Throughputs { get; } = [];

    public List<double> Medians { get; } = [];

    /// <summary>CPU seconds the service process used during measured phases, and the requests it served then.</summary>
    public double CpuSeconds { get; set; }

    public long Requests { get; set; }

    /// <summary>Mean effserve.energy_mj of the responses seen.</summary>
    public double EnergyMjPerRequest => _charged == 0 ? 0 : _energyMj / _charged;

    /// <summary>Waits until the service answers ServerReady with true; fails with its last output if it dies first.</summary>
    public async Task WaitReadyAsync(TimeSpan timeout)
    {
        var watch = Stopwatch.StartNew();
        while (watch.Elapsed < timeout)
        {
            if (Process.HasExited)
            {
                throw new BenchException($"{Name} exited before it was ready:{Environment.NewLine}{Process.Tail}");
            }

            try
            {
                if ((await _client.ServerReadyAsync(new ServerReadyRequest(), deadline: TimeProvider.System.GetUtcNow().UtcDateTime.AddSeconds(2))).Ready)
                {
                    return;
                }
            }
            catch (RpcException)
            {
                // not listening yet
            }

            await Task.Delay(100);
        }

        throw new BenchException($"{Name} was not ready within {timeout}:{Environment.NewLine}{Process.Tail}");
    }

    /// <summary>Closed loop: <paramref name="callers"/> callers, each sending its next request when the last answered; requests per second.</summary>
    public async Task<double> ThroughputAsync(IReadOnlyList<ModelInferRequest> requests, int callers, int total)
    {
        var issued = 0;
        var watch = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, callers).Select(async _ =>
        {
            int n;
            while ((n = Interlocked.Increment(ref issued)) <= total)
            {
                Note(await _client.ModelInferAsync(requests[n % requests.Count]));
            }
        }));
        return total / watch.Elapsed.TotalSeconds;
    }

    /// <summary>One request in flight: the latency of each, in microseconds.</summary>
    public async Task<List<double>> LatenciesAsync(IReadOnlyList<ModelInferRequest> requests, int total)
    {
        var latencies = new List<double>(total);
        for (var n = 0; n < total; n++)
        {
            var started = Stopwatch.GetTimestamp();
            var response = await _client.ModelInferAsync(requests[n % requests.Count]);
            latencies.Add(Stopwatch.GetElapsedTime(started).TotalMicroseconds);
            Note(response);
        }

        return latencies;
    }

    public void Dispose() => _channel.Dispose();

    private void Note(ModelInferResponse response)
    {
        if (response.Parameters.TryGetValue("effserve.energy_mj", out var energy))
        {
            lock (this)
            {
                _energyMj += energy.DoubleParam;
                _charged++;
            }
        }
    }
}
