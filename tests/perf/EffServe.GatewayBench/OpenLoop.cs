using System.Collections.Concurrent;
using System.Diagnostics;
using EffServe.Contracts.Inference;
using EffServe.LoadGen;
using Grpc.Core;

namespace EffServe.GatewayBench;

/// <summary>What happened to one call of an open-loop step.</summary>
/// <param name="Status">The call's status; OK for an answer.</param>
/// <param name="ClientDeadline">The client's own deadline ended the call: no answer and no refusal came in time.</param>
/// <param name="EmptyMessage">A status other than OK that the server sent with an empty grpc-message.</param>
/// <param name="LatencyUs">Microseconds from the scheduled send time to the answer or the error.</param>
/// <param name="Transport">The status is the client's reading of a transport failure (a stream reset, a lost connection), not one the server sent.</param>
internal readonly record struct CallOutcome(StatusCode Status, bool ClientDeadline, bool EmptyMessage, long LatencyUs, bool Transport = false);

/// <summary>The raw record of one open-loop step.</summary>
/// <param name="Outcomes">One per scheduled call, in schedule order.</param>
/// <param name="LateUs">How late each send started after its scheduled time, µs.</param>
/// <param name="ElapsedSeconds">From the first scheduled send to the last answer.</param>
/// <param name="ClientCpuSeconds">CPU seconds of this process during the step.</param>
/// <param name="Examples">The first message seen for each failing status (client deadlines apart).</param>
internal sealed record OpenLoopRecord(CallOutcome[] Outcomes, long[] LateUs, double ElapsedSeconds, double ClientCpuSeconds, IReadOnlyDictionary<string, string> Examples);

/// <summary>
/// Sends a seeded Poisson trace open loop: each call at its scheduled time whether or not earlier
/// ones have answered, round-robin over several channels so that one HTTP/2 connection pool does
/// not limit the client, every call with a gRPC deadline counted from its scheduled send time, and
/// latency measured from that time too (a late send is charged to the call: no coordinated
/// omission). One dispatching thread sleeps to each send time and starts the call without awaiting
/// it; answers are handled on the thread pool.
/// </summary>
internal static class OpenLoop
{
    public static async Task<OpenLoopRecord> RunAsync(
        IReadOnlyList<GRPCInferenceService.GRPCInferenceServiceClient> clients,
        IReadOnlyList<ModelInferRequest> requests,
        TracedRequest[] trace,
        TimeSpan deadline)
    {
        var outcomes = new CallOutcome[trace.Length];
        var lateUs = new long[trace.Length];
        var pending = new Task[trace.Length];
        var examples = new ConcurrentDictionary<string, string>(StringComparer.Ordinal);
        var frequency = (double)Stopwatch.Frequency;
        var clientCpuBefore = Environment.CpuUsage.TotalTime;
        var startUtc = TimeProvider.System.GetUtcNow().UtcDateTime;
        var start = Stopwatch.GetTimestamp();

        var dispatcher = new Thread(() =>
        {
            for (var i = 0; i < trace.Length; i++)
            {
                var due = start + (long)(trace[i].OffsetSeconds * frequency);
                OpenLoopRunner.WaitUntil(due);
                lateUs[i] = (long)((Stopwatch.GetTimestamp() - due) * 1e6 / frequency);
                var deadlineUtc = startUtc + TimeSpan.FromSeconds(trace[i].OffsetSeconds) + deadline;
                pending[i] = CallAsync(clients[i % clients.Count], requests[trace[i].Sample % requests.Count], deadlineUtc, due, outcomes, i, examples);
            }
        })
        {
            IsBackground = true,
            Name = "effserve-overload-dispatch",
            Priority = ThreadPriority.AboveNormal,
        };
        dispatcher.Start();
        await Task.Run(dispatcher.Join).ConfigureAwait(false);
        await Task.WhenAll(pending).ConfigureAwait(false);
        return new OpenLoopRecord(
            outcomes,
            lateUs,
            Stopwatch.GetElapsedTime(start).TotalSeconds,
            (Environment.CpuUsage.TotalTime - clientCpuBefore).TotalSeconds,
            new SortedDictionary<string, string>(examples, StringComparer.Ordinal));
    }

    private static async Task CallAsync(
        GRPCInferenceService.GRPCInferenceServiceClient client,
        ModelInferRequest request,
        DateTime deadlineUtc,
        long due,
        CallOutcome[] outcomes,
        int index,
        ConcurrentDictionary<string, string> examples)
    {
        try
        {
            using var call = client.ModelInferAsync(request, new CallOptions(deadline: deadlineUtc));
            await call.ResponseAsync.ConfigureAwait(false);
            outcomes[index] = new CallOutcome(StatusCode.OK, false, false, (long)Stopwatch.GetElapsedTime(due).TotalMicroseconds);
        }
        catch (RpcException e)
        {
            var latency = (long)Stopwatch.GetElapsedTime(due).TotalMicroseconds;
            var detail = e.Status.Detail;

            // grpc-dotnet ends a call at its deadline with DEADLINE_EXCEEDED and no message, and
            // hides grpc-status from the trailers, so a refusal the server sent with no message
            // after the deadline cannot be told from it; one sent before the deadline can.
            var clientDeadline = e.StatusCode == StatusCode.DeadlineExceeded && string.IsNullOrEmpty(detail) && TimeProvider.System.GetUtcNow().UtcDateTime >= deadlineUtc;
            // grpc-dotnet keeps the exception behind a status it made of a transport failure.
            var transport = e.Status.DebugException is not null;
            outcomes[index] = new CallOutcome(e.StatusCode, clientDeadline, !clientDeadline && !transport && string.IsNullOrEmpty(detail), latency, transport);
            if (!clientDeadline)
            {
                examples.TryAdd(RunSummary.StatusName(e.StatusCode) + (transport ? " (transport)" : ""), detail);
            }
        }
    }
}

/// <summary>
/// Resident memory of some processes, sampled every 250 ms (VmRSS of /proc/PID/status) from
/// construction to disposal: the first sample and the peak of each.
/// </summary>
internal sealed class MemoryWatch : IAsyncDisposable
{
    private readonly IReadOnlyList<int> _pids;
    private readonly double[] _first;
    private readonly double[] _peak;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _sampling;

    public MemoryWatch(IReadOnlyList<int> pids)
    {
        _pids = pids;
        _first = [.. pids.Select(p => ProcStat.RssMiB(p) ?? double.NaN)];
        _peak = [.. _first];
        _sampling = SampleAsync(_stop.Token);
    }

    /// <summary>MiB at the start and the peak of the process at <paramref name="index"/> (the constructor's order).</summary>
    public (double StartMiB, double PeakMiB) Of(int index) => (_first[index], _peak[index]);

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        await _sampling.ConfigureAwait(false);
        Sample();
        _stop.Dispose();
    }

    private async Task SampleAsync(CancellationToken stop)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(250));
        try
        {
            while (await timer.WaitForNextTickAsync(stop).ConfigureAwait(false))
            {
                Sample();
            }
        }
        catch (OperationCanceledException)
        {
            // disposed
        }
    }

    private void Sample()
    {
        for (var i = 0; i < _pids.Count; i++)
        {
            if (ProcStat.RssMiB(_pids[i]) is { } mib && !(mib <= _peak[i]))
            {
                _peak[i] = mib;
            }
        }
    }
}
