using System.Diagnostics;
using EffServe.Contracts.Inference;
using EffServe.Core.Protocol;
using EffServe.GatewayBench;
using Grpc.Core;
using Grpc.Net.Client;

namespace EffServe.CacheBench;

/// <summary>CPU seconds so far of the processes a call goes through, and of this process.</summary>
internal sealed record Cpu(double Gateway, double Service, double Redis, double Client)
{
    public static Cpu Now(Replica replica, int redisPid) => new(
        ProcStat.CpuSeconds([replica.Gateway.Pid]),
        ProcStat.CpuSeconds([replica.Service.Pid]),
        ProcStat.CpuSeconds([redisPid]),
        Environment.CpuUsage.TotalTime.TotalSeconds);

    public static Cpu operator -(Cpu a, Cpu b) => new(a.Gateway - b.Gateway, a.Service - b.Service, a.Redis - b.Redis, a.Client - b.Client);

    public static Cpu operator +(Cpu a, Cpu b) => new(a.Gateway + b.Gateway, a.Service + b.Service, a.Redis + b.Redis, a.Client + b.Client);

    public static Cpu Zero { get; } = new(0, 0, 0, 0);

    /// <summary>Gateway, service and Redis together: what the server side spent.</summary>
    public double Server => Gateway + Service + Redis;
}

/// <summary>What one throughput window (or one batch of job items) measured.</summary>
/// <param name="Calls">Calls (or items) answered.</param>
/// <param name="Errors">Calls (or items) that failed.</param>
/// <param name="Unexpected">Answers whose <c>effserve.cache</c> was not what the arm expects (a hit arm answered by a miss ...).</param>
/// <param name="Seconds">From the first send to the last answer.</param>
/// <param name="Cpu">CPU seconds spent meanwhile.</param>
internal sealed record Window(long Calls, long Errors, long Unexpected, double Seconds, Cpu Cpu)
{
    public double Rate => Calls / Seconds;
}

/// <summary>Channels to the gateways: one for calls with one in flight, and one per caller for concurrent load.</summary>
internal sealed class Clients : IDisposable
{
    private readonly Dictionary<Replica, (GrpcChannel Single, List<GrpcChannel> Callers)> _channels = [];

    public Clients(IEnumerable<Replica> replicas, int callers)
    {
        foreach (var replica in replicas)
        {
            _channels[replica] = (
                GrpcChannel.ForAddress(replica.GatewayAddress),
                [.. Enumerable.Range(0, callers).Select(_ => GrpcChannel.ForAddress(replica.GatewayAddress))]);
        }
    }

    public GRPCInferenceService.GRPCInferenceServiceClient Single(Replica replica) => new(_channels[replica].Single);

    public IReadOnlyList<GRPCInferenceService.GRPCInferenceServiceClient> Callers(Replica replica) =>
        [.. _channels[replica].Callers.Select(c => new GRPCInferenceService.GRPCInferenceServiceClient(c))];

    public Contracts.Jobs.JobService.JobServiceClient Jobs(Replica replica) => new(_channels[replica].Single);

    public void Dispose()
    {
        foreach (var (single, callers) in _channels.Values)
        {
            single.Dispose();
            foreach (var channel in callers)
            {
                channel.Dispose();
            }
        }
    }
}

/// <summary>The closed loops and one-in-flight series every arm is made of.</summary>
internal static class Measure
{
    /// <summary>What <c>effserve.cache</c> said, or "none".</summary>
    public static string Outcome(ModelInferResponse response) =>
        response.Parameters.TryGetValue(ParameterNames.Cache, out var p) ? p.StringParam : "none";

    /// <summary>
    /// <paramref name="count"/> calls one after the other; the latency of each (µs), how many were
    /// not answered with <paramref name="expected"/>, and the CPU spent.
    /// </summary>
    public static async Task<(List<double> Latencies, long Unexpected, Cpu Cpu)> SeriesAsync(
        GRPCInferenceService.GRPCInferenceServiceClient client, Func<int, ModelInferRequest> next, int count, string expected, Replica replica, int redisPid)
    {
        var latencies = new List<double>(count);
        long unexpected = 0;
        var before = Cpu.Now(replica, redisPid);
        for (var i = 0; i < count; i++)
        {
            var request = next(i);
            var start = Stopwatch.GetTimestamp();
            var response = await client.ModelInferAsync(request).ConfigureAwait(false);
            latencies.Add(Stopwatch.GetElapsedTime(start).TotalMicroseconds);
            unexpected += Outcome(response) == expected ? 0 : 1;
        }

        return (latencies, unexpected, Cpu.Now(replica, redisPid) - before);
    }

    /// <summary>
    /// Closed loop: every caller keeps one request in flight, cycling through <paramref name="requests"/>
    /// from its own offset, until <paramref name="seconds"/> have passed; the window ends with the last answer.
    /// </summary>
    public static async Task<Window> ClosedLoopAsync(
        IReadOnlyList<GRPCInferenceService.GRPCInferenceServiceClient> callers, IReadOnlyList<ModelInferRequest> requests, double seconds, string expected, Replica replica, int redisPid)
    {
        var before = Cpu.Now(replica, redisPid);
        var start = Stopwatch.GetTimestamp();
        var end = start + (long)(seconds * Stopwatch.Frequency);

        async Task<(long Ok, long Failed, long Unexpected)> CallerAsync(GRPCInferenceService.GRPCInferenceServiceClient client, int offset)
        {
            long ok = 0, failed = 0, unexpected = 0;
            var i = offset;
            while (Stopwatch.GetTimestamp() < end)
            {
                try
                {
                    var response = await client.ModelInferAsync(requests[i++ % requests.Count]).ConfigureAwait(false);
                    ok++;
                    unexpected += Outcome(response) == expected ? 0 : 1;
                }
                catch (RpcException)
                {
                    failed++;
                }
            }

            return (ok, failed, unexpected);
        }

        var results = await Task.WhenAll(callers.Select((c, k) => CallerAsync(c, k * 7))).ConfigureAwait(false);
        var elapsed = Stopwatch.GetElapsedTime(start).TotalSeconds;
        return new Window(results.Sum(r => r.Ok), results.Sum(r => r.Failed), results.Sum(r => r.Unexpected), elapsed, Cpu.Now(replica, redisPid) - before);
    }

    /// <summary>Every request of <paramref name="items"/> once, spread over the callers (each takes the next one not yet sent).</summary>
    public static async Task<Window> OnlineBatchAsync(
        IReadOnlyList<GRPCInferenceService.GRPCInferenceServiceClient> callers, IReadOnlyList<ModelInferRequest> items, Replica replica, int redisPid)
    {
        var before = Cpu.Now(replica, redisPid);
        var start = Stopwatch.GetTimestamp();
        var nextItem = -1;

        async Task<(long Ok, long Failed)> CallerAsync(GRPCInferenceService.GRPCInferenceServiceClient client)
        {
            long ok = 0, failed = 0;
            int i;
            while ((i = Interlocked.Increment(ref nextItem)) < items.Count)
            {
                try
                {
                    await client.ModelInferAsync(items[i]).ConfigureAwait(false);
                    ok++;
                }
                catch (RpcException)
                {
                    failed++;
                }
            }

            return (ok, failed);
        }

        var results = await Task.WhenAll(callers.Select(CallerAsync)).ConfigureAwait(false);
        var elapsed = Stopwatch.GetElapsedTime(start).TotalSeconds;
        return new Window(results.Sum(r => r.Ok), results.Sum(r => r.Failed), 0, elapsed, Cpu.Now(replica, redisPid) - before);
    }
}
