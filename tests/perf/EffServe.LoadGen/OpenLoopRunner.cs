using System.Diagnostics;
using System.Runtime.InteropServices;
using EffServe.Contracts.Inference;
using EffServe.Core.Protocol;
using Grpc.Core;

namespace EffServe.LoadGen;

/// <summary>What happened to one request of a trace.</summary>
public struct RequestOutcome
{
    /// <summary>The SLO class (index into the mix).</summary>
    public int ClassIndex { get; set; }

    /// <summary>Microseconds from the scheduled send time to the answer (or the error).</summary>
    public long LatencyUs { get; set; }

    /// <summary>Microseconds the send started after its scheduled time.</summary>
    public long LateUs { get; set; }

    /// <summary>The call's status; OK for an answer.</summary>
    public StatusCode Status { get; set; }

    /// <summary>The client's own deadline ended the call (the server neither answered nor refused in time).</summary>
    public bool ClientDeadline { get; set; }

    /// <summary><c>effserve.variant</c> of the answer; null when absent.</summary>
    public string? Variant { get; set; }

    /// <summary><c>effserve.exit_stage</c> of the answer; 0 when absent.</summary>
    public long ExitStage { get; set; }

    /// <summary>1 when the answer's top class is the sample's label, 0 when not, -1 when unknown.</summary>
    public sbyte Correct { get; set; }

    /// <summary><c>effserve.compute_us</c> of the answer; -1 when absent.</summary>
    public long ComputeUs { get; set; }

    /// <summary><c>effserve.energy_mj</c> of the answer; NaN when absent.</summary>
    public double EnergyMj { get; set; }

    /// <summary>Whether the request was sent (false only when the run was cancelled first).</summary>
    public bool Sent { get; set; }
}

/// <summary>How one run sends its trace.</summary>
public sealed record RunSettings
{
    /// <summary>
    /// The client gives up on a call this long after its scheduled send time (the gRPC deadline),
    /// so that a server that neither answers nor refuses cannot hold a run open; never less than
    /// four times the class's SLO. It counts as a miss with status DEADLINE_EXCEEDED.
    /// </summary>
    public TimeSpan GiveUpAfter { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Send the routing header an EffServe gateway reads (other servers ignore it).</summary>
    public bool RoutingHeader { get; init; } = true;
}

/// <summary>The raw record of one run: the trace, each request's outcome, and the clocks around it.</summary>
public sealed class RunRecord
{
    public required TracedRequest[] Trace { get; init; }

    public required RequestOutcome[] Outcomes { get; init; }

    public required double RatePerSecond { get; init; }

    public required double DurationSeconds { get; init; }

    /// <summary>Seconds from the first scheduled send to the last answer.</summary>
    public required double ElapsedSeconds { get; init; }

    /// <summary>Sends that started late: the histogram of lateness in microseconds.</summary>
    public required LatencyHistogram Lateness { get; init; }

    /// <summary>CPU seconds of the server process during the run (null when not measured).</summary>
    public double? ServerCpuSeconds { get; init; }

    /// <summary>CPU seconds of this (client) process during the run.</summary>
    public required double ClientCpuSeconds { get; init; }

    /// <summary>The first error message seen for each failing status (RESOURCE_EXHAUSTED → the server's reason).</summary>
    public IReadOnlyDictionary<string, string> FailureExamples { get; init; } = new Dictionary<string, string>();
}

/// <summary>
/// Sends a trace open loop: each request at its scheduled time whether or not earlier ones have
/// answered, latency measured from the scheduled time (so a late send or a slow server is charged
/// to the request: no coordinated omission). One dispatching thread sleeps to each send time
/// (nanosleep, about 60 µs of slack) and starts the call; answers are handled on the thread pool.
/// </summary>
public static partial class OpenLoopRunner
{
    private const string RoutingHeaderName = "effserve-model";

    /// <summary>Runs <paramref name="trace"/> against <paramref name="invoker"/> and waits for every answer.</summary>
    /// <param name="invoker">A call invoker over a reused channel.</param>
    /// <param name="workload">The prepared requests and labels.</param>
    /// <param name="trace">The schedule (from <see cref="Trace.Generate"/>).</param>
    /// <param name="ratePerSecond">The rate the trace was drawn at (for the record).</param>
    /// <param name="durationSeconds">The duration the trace was drawn for.</param>
    /// <param name="settings">Client deadline and headers.</param>
    /// <param name="serverCpuSeconds">Reads the server process's CPU seconds; null when the server is not ours to measure.</param>
    /// <param name="cancellationToken">Stops sending; calls in flight are cancelled.</param>
    public static async Task<RunRecord> RunAsync(
        CallInvoker invoker,
        Workload workload,
        TracedRequest[] trace,
        double ratePerSecond,
        double durationSeconds,
        RunSettings settings,
        Func<double>? serverCpuSeconds = null,
        CancellationToken cancellationToken = default)
    {
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(invoker);
        var outcomes = new RequestOutcome[trace.Length];
        var pending = new Task[trace.Length];
        var lateness = new LatencyHistogram();
        var examples = new System.Collections.Concurrent.ConcurrentDictionary<string, string>(StringComparer.Ordinal);
        var headers = settings.RoutingHeader ? new Metadata { { RoutingHeaderName, workload.Model } } : null;
        var giveUp = workload.Mix.Classes.Select(c => TimeSpan.FromMilliseconds(Math.Max(settings.GiveUpAfter.TotalMilliseconds, 4 * c.SloMs))).ToArray();
        var labels = workload.Labels;

        var cpuBefore = serverCpuSeconds?.Invoke();
        var clientCpuBefore = Environment.CpuUsage.TotalTime;
        var frequency = (double)Stopwatch.Frequency;
        var startUtc = TimeProvider.System.GetUtcNow().UtcDateTime;
        var start = Stopwatch.GetTimestamp();

        var dispatcher = new Thread(() =>
        {
            for (var i = 0; i < trace.Length && !cancellationToken.IsCancellationRequested; i++)
            {
                var entry = trace[i];
                var due = start + (long)(entry.OffsetSeconds * frequency);
                WaitUntil(due);
                var now = Stopwatch.GetTimestamp();
                var late = (long)((now - due) * 1e6 / frequency);
                lateness.Record(late);
                outcomes[i].ClassIndex = entry.ClassIndex;
                outcomes[i].LateUs = late;
                outcomes[i].Sent = true;
                var deadline = startUtc + TimeSpan.FromSeconds(entry.OffsetSeconds) + giveUp[entry.ClassIndex];
                var options = new CallOptions(headers, deadline, cancellationToken);
                pending[i] = Complete(client, workload.Request(entry.ClassIndex, entry.Sample), options, due, labels?[entry.Sample], outcomes, i, examples);
            }
        })
        {
            IsBackground = true,
            Name = "effserve-loadgen-dispatch",
            Priority = ThreadPriority.AboveNormal,
        };
        dispatcher.Start();
        await Task.Run(dispatcher.Join, CancellationToken.None).ConfigureAwait(false);
        await Task.WhenAll(pending.Where(t => t is not null)).ConfigureAwait(false);
        var elapsed = Stopwatch.GetElapsedTime(start).TotalSeconds;

        return new RunRecord
        {
            Trace = trace,
            Outcomes = outcomes,
            RatePerSecond = ratePerSecond,
            DurationSeconds = durationSeconds,
            ElapsedSeconds = elapsed,
            Lateness = lateness,
            ServerCpuSeconds = cpuBefore is { } before ? serverCpuSeconds!() - before : null,
            ClientCpuSeconds = (Environment.CpuUsage.TotalTime - clientCpuBefore).TotalSeconds,
            FailureExamples = new SortedDictionary<string, string>(examples, StringComparer.Ordinal),
        };
    }

    private static async Task Complete(
        GRPCInferenceService.GRPCInferenceServiceClient client,
        ModelInferRequest request,
        CallOptions options,
        long due,
        long? label,
        RequestOutcome[] outcomes,
        int index,
        System.Collections.Concurrent.ConcurrentDictionary<string, string> examples)
    {
        ref var outcome = ref outcomes[index];
        outcome.ComputeUs = -1;
        outcome.EnergyMj = double.NaN;
        outcome.Correct = -1;
        try
        {
            using var call = client.ModelInferAsync(request, options);
            var response = await call.ResponseAsync.ConfigureAwait(false);
            outcomes[index].LatencyUs = MicrosecondsSince(due);
            outcomes[index].Status = StatusCode.OK;
            Read(response, label, ref outcomes[index]);
        }
        catch (RpcException e)
        {
            outcomes[index].LatencyUs = MicrosecondsSince(due);
            outcomes[index].Status = e.StatusCode;
            outcomes[index].ClientDeadline = e.StatusCode == StatusCode.DeadlineExceeded && options.Deadline is { } deadline && TimeProvider.System.GetUtcNow().UtcDateTime >= deadline;
            examples.TryAdd(RunSummary.StatusName(e.StatusCode) + (outcomes[index].ClientDeadline ? " (client)" : ""), e.Status.Detail);
        }
    }

    private static void Read(ModelInferResponse response, long? label, ref RequestOutcome outcome)
    {
        var parameters = response.Parameters;
        if (parameters.TryGetValue(ParameterNames.Variant, out var variant) && variant.ParameterChoiceCase == InferParameter.ParameterChoiceOneofCase.StringParam)
        {
            outcome.Variant = variant.StringParam;
        }

        if (parameters.TryGetValue(ParameterNames.ExitStage, out var stage) && stage.ParameterChoiceCase == InferParameter.ParameterChoiceOneofCase.Int64Param)
        {
            outcome.ExitStage = stage.Int64Param;
        }

        if (parameters.TryGetValue(ParameterNames.ComputeUs, out var compute) && compute.ParameterChoiceCase == InferParameter.ParameterChoiceOneofCase.Int64Param)
        {
            outcome.ComputeUs = compute.Int64Param;
        }

        if (parameters.TryGetValue(EnergyParameter, out var energy) && energy.ParameterChoiceCase == InferParameter.ParameterChoiceOneofCase.DoubleParam)
        {
            outcome.EnergyMj = energy.DoubleParam;
        }

        if (label is { } truth && Workload.PredictedClass(response) is { } predicted)
        {
            outcome.Correct = predicted == truth ? (sbyte)1 : (sbyte)0;
        }
    }

    /// <summary>The response parameter carrying the energy attributed to a request.</summary>
    public const string EnergyParameter = "effserve.energy_mj";

    private static long MicrosecondsSince(long timestamp) => (long)Stopwatch.GetElapsedTime(timestamp).TotalMicroseconds;

    /// <summary>
    /// Sleeps until the Stopwatch reaches <paramref name="due"/>: in steps of at most 1 ms with
    /// nanosleep (the kernel's high-resolution timers), so a send is late by the timer slack, not
    /// by the 1 ms granularity of <see cref="Thread.Sleep(int)"/>, and no core is burnt spinning.
    /// </summary>
    public static void WaitUntil(long due)
    {
        while (true)
        {
            var remaining = due - Stopwatch.GetTimestamp();
            if (remaining <= 0)
            {
                return;
            }

            var microseconds = (uint)Math.Min(1000, Math.Max(1, remaining * 1_000_000 / Stopwatch.Frequency));
            if (OperatingSystem.IsLinux() || OperatingSystem.IsMacOS())
            {
                _ = Usleep(microseconds);
            }
            else
            {
                Thread.Sleep(TimeSpan.FromMicroseconds(microseconds));
            }
        }
    }

    [LibraryImport("libc", EntryPoint = "usleep")]
    private static partial int Usleep(uint microseconds);
}
