using System.Diagnostics;
using EffServe.Contracts.Inference;
using EffServe.Contracts.Jobs;
using EffServe.GatewayBench;
using Grpc.Core;

namespace EffServe.CacheBench;

/// <summary>One job measured end to end.</summary>
/// <param name="Window">Items answered and failed, from the start of SubmitJob to the end of the result stream, and the CPU spent.</param>
/// <param name="SubmitSeconds">How long SubmitJob took (storing the inputs and queueing the items).</param>
/// <param name="FirstResultSeconds">From the start of SubmitJob to the first result streamed.</param>
/// <param name="Missing">Items with no result when the stream ended.</param>
/// <param name="Repeated">Results streamed more than once for one item.</param>
internal sealed record JobOutcome(Window Window, double SubmitSeconds, double FirstResultSeconds, int Missing, int Repeated);

/// <summary>Runs one asynchronous job through the gateway: SubmitJob, then StreamJobResults until the job ends.</summary>
internal static class JobRun
{
    public static async Task<JobOutcome> RunAsync(JobService.JobServiceClient client, string model, IReadOnlyList<ModelInferRequest> items, Replica replica, int redisPid)
    {
        var submit = new SubmitJobRequest { ModelName = model };
        submit.Items.AddRange(items);
        var before = Cpu.Now(replica, redisPid);
        var start = Stopwatch.GetTimestamp();
        var job = await client.SubmitJobAsync(submit).ConfigureAwait(false);
        var submitted = Stopwatch.GetElapsedTime(start).TotalSeconds;
        if (job.Items != (ulong)items.Count)
        {
            throw new BenchException($"SubmitJob took {job.Items} items of the {items.Count} sent.");
        }

        var seen = new int[items.Count];
        long ok = 0, failed = 0;
        var first = double.NaN;
        using (var stream = client.StreamJobResults(new StreamJobResultsRequest { JobId = job.JobId }))
        {
            await foreach (var result in stream.ResponseStream.ReadAllAsync().ConfigureAwait(false))
            {
                if (double.IsNaN(first))
                {
                    first = Stopwatch.GetElapsedTime(start).TotalSeconds;
                }

                if (result.Index >= (ulong)items.Count)
                {
                    throw new BenchException($"Job {job.JobId} streamed a result for item {result.Index}; it has {items.Count} items.");
                }

                seen[result.Index]++;
                if (result.OutcomeCase == JobResult.OutcomeOneofCase.Response)
                {
                    ok++;
                }
                else
                {
                    failed++;
                }
            }
        }

        var elapsed = Stopwatch.GetElapsedTime(start).TotalSeconds;
        var cpu = Cpu.Now(replica, redisPid) - before;
        return new JobOutcome(
            new Window(ok, failed, 0, elapsed, cpu),
            submitted,
            first,
            seen.Count(n => n == 0),
            seen.Sum(n => Math.Max(0, n - 1)));
    }
}
