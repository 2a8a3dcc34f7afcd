using System.Diagnostics;
using System.Globalization;
using EffServe.Contracts.Inference;
using Grpc.Core;

namespace EffServe.LoadGen;

/// <summary>Closed-loop helpers: peak throughput (N in flight) and warm-up until latency settles.</summary>
public static class ClosedLoop
{
    /// <summary>
    /// Answers per second with <paramref name="callers"/> requests in flight for
    /// <paramref name="seconds"/>, each caller sending its next request when the last one answered
    /// (BENCHMARKING.md: closed loop only for peak throughput). Requests cycle through the samples
    /// of the first class; failed calls are not counted.
    /// </summary>
    public static async Task<double> ThroughputAsync(CallInvoker invoker, Workload workload, int callers, double seconds, CancellationToken cancellationToken = default)
    {
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(invoker);
        var next = 0;
        long answered = 0;
        // The loosest class: this measures how many answers the arm can give, not whether a tight
        // budget survives 8 requests in flight (sheds would read as low capacity).
        var loosest = workload.Mix.Classes.Select((c, i) => (c.SloMs, i)).Max().i;
        var watch = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, callers).Select(async _ =>
        {
            while (watch.Elapsed.TotalSeconds < seconds && !cancellationToken.IsCancellationRequested)
            {
                var sample = Interlocked.Increment(ref next) % workload.SampleCount;
                try
                {
                    await client.ModelInferAsync(workload.Request(loosest, sample), cancellationToken: cancellationToken).ConfigureAwait(false);
                    Interlocked.Increment(ref answered);
                }
                catch (RpcException e) when (e.StatusCode is StatusCode.ResourceExhausted or StatusCode.DeadlineExceeded)
                {
                    // shed: not an answer
                }
            }
        })).ConfigureAwait(false);
        return Interlocked.Read(ref answered) / watch.Elapsed.TotalSeconds;
    }

    /// <summary>
    /// Warms an arm up: windows of <paramref name="requestsPerWindow"/> sequential requests until the
    /// median latencies of three windows in a row agree within 10% (at most <paramref name="maxWindows"/>);
    /// returns the windows' medians in microseconds. Requests the server sheds are left out.
    /// </summary>
    public static async Task<IReadOnlyList<double>> WarmUpAsync(CallInvoker invoker, Workload workload, int requestsPerWindow = 100, int maxWindows = 15, CancellationToken cancellationToken = default)
    {
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(invoker);
        var medians = new List<double>();
        var latencies = new double[requestsPerWindow];
        var sample = 0;
        while (medians.Count < maxWindows)
        {
            for (var i = 0; i < requestsPerWindow; i++)
            {
                var started = Stopwatch.GetTimestamp();
                try
                {
                    await client.ModelInferAsync(workload.Request(workload.Mix.Classes.Count - 1, sample++ % workload.SampleCount), cancellationToken: cancellationToken).ConfigureAwait(false);
                    latencies[i] = Stopwatch.GetElapsedTime(started).TotalMicroseconds;
                }
                catch (RpcException e) when (e.StatusCode is StatusCode.ResourceExhausted or StatusCode.DeadlineExceeded)
                {
                    latencies[i] = double.NaN; // shed on a busy machine: not a latency
                }
            }

            medians.Add(RatePoint.Median(latencies));
            var last = medians.TakeLast(3).ToList();
            if (last.Count == 3 && last.Max() <= 1.1 * last.Min())
            {
                break;
            }
        }

        return medians;
    }

    /// <summary>"412, 398, 405 µs".</summary>
    public static string Describe(IReadOnlyList<double> medians) =>
        string.Join(", ", medians.Select(m => m.ToString("0", CultureInfo.InvariantCulture))) + " µs";
}
