using System.Diagnostics;
using System.Globalization;
using EffServe.Core.Accounting;
using EffServe.Core.Batching;
using EffServe.Core.Selection;
using EffServe.Core.Tensors;
using Grpc.Core;

namespace EffServe.Inference.Serving;

/// <summary>A request waiting to run: what it runs, what it brings and how it ends.</summary>
public sealed class PendingRequest
{
    public required ServedModel Model { get; init; }

    public required string Variant { get; init; }

    /// <summary>The early-exit threshold the run uses (the variant's own for other kinds, where it is ignored).</summary>
    public required double Threshold { get; init; }

    /// <summary>The threshold the latency model scales by; null for kinds without one.</summary>
    public double? LatencyThreshold { get; init; }

    public required LatencyModel Latency { get; init; }

    public required IReadOnlyList<NamedTensor> Inputs { get; init; }

    public required IReadOnlyList<string> Outputs { get; init; }

    public required int Samples { get; init; }

    /// <summary>Most samples a batch of this request's kind may hold.</summary>
    public required int MaxBatchSamples { get; init; }

    /// <summary>Predicted run time of the request alone, milliseconds (0 when unknown).</summary>
    public double PredictedMs { get; init; }

    public RequestBudget Budget { get; init; } = RequestBudget.None;

    /// <summary>Cancelled when the caller gives up or its timeout passes: a run none of whose requests still wants it is terminated.</summary>
    public CancellationToken RunToken { get; init; }

    /// <summary>The request's span, which the run's span is linked to (and a child of, for the batch's first request).</summary>
    public ActivityContext? Span { get; init; }

    /// <summary>When the request left the queue for its run (<see cref="Stopwatch"/> timestamp; 0 while waiting).</summary>
    public long Dequeued { get; set; }

    /// <summary>Wall-clock time it left the queue, for the queue span.</summary>
    public DateTimeOffset DequeuedAt { get; set; }

    internal TaskCompletionSource<BatchOutcome> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    internal QueueEntry<PendingRequest>? Entry { get; set; }

    /// <summary>Taken out of the queue for a run (set under the scheduler's lock).</summary>
    internal bool Taken { get; set; }

    /// <summary>Hands the request its part of a finished run.</summary>
    public void Complete(BatchOutcome outcome) => Completion.TrySetResult(outcome);
}

/// <summary>A request's part of a run.</summary>
/// <param name="Outputs">Its rows of each output.</param>
/// <param name="ExitStages">Early exit: the stage each of its samples left at.</param>
/// <param name="BatchSamples">Samples in the whole run.</param>
/// <param name="Charge">Its share of the run's energy and device time.</param>
/// <param name="RunStarted">When the run began (<see cref="Stopwatch"/> timestamp).</param>
/// <param name="RunEnded">When it ended.</param>
/// <param name="Run">The run's result (stages, CPU time).</param>
public sealed record BatchOutcome(IReadOnlyList<NamedTensor> Outputs, int[]? ExitStages, int BatchSamples, RequestCharge Charge, long RunStarted, long RunEnded, Onnx.RunResult Run);

/// <summary>How a request entered the scheduler.</summary>
public enum Admission
{
    /// <summary>A slot was free: its run started at once, without waiting.</summary>
    Started,

    /// <summary>Waiting for a run slot.</summary>
    Queued,

    /// <summary>Its class of requests is at its queue bound.</summary>
    QueueFull,
}

/// <summary>
/// The one queue in front of the run slots: requests wait here, ordered by priority and deadline,
/// until a slot is free; then the batch the backlog forms (the largest that meets its earliest
/// deadline) runs on it. A request whose queue token is cancelled leaves at once; a run is
/// terminated when every request in it has given up.
/// </summary>
public sealed class BatchScheduler : IBatchPlanner
{
    private readonly Lock _lock = new();
    private readonly RunSlots _slots;
    private readonly TimeProvider _time;
    private readonly Action<IReadOnlyList<PendingRequest>, CancellationToken> _execute;
    private readonly DeadlineBacklog<PendingRequest> _backlog;
    private readonly Dictionary<string, PendingRequest> _keys = new(StringComparer.Ordinal);
    private readonly HashSet<InFlight> _inFlight = [];

    /// <summary>
    /// <paramref name="execute"/> runs a batch and completes each request; an exception fails every
    /// request it did not complete.
    /// </summary>
    public BatchScheduler(RunSlots slots, TimeProvider time, SelectionOptions options, Action<IReadOnlyList<PendingRequest>, CancellationToken> execute)
    {
        _slots = slots;
        _time = time;
        _execute = execute;
        _backlog = new DeadlineBacklog<PendingRequest>(options.MaxQueuedRequests, options.MaxQueuedBackgroundRequests);
        slots.Released += Pump;
    }

    /// <summary>Online requests waiting.</summary>
    public int Queued
    {
        get
        {
            lock (_lock)
            {
                return _backlog.Count;
            }
        }
    }

    /// <summary>Background requests waiting.</summary>
    public int QueuedBackground
    {
        get
        {
            lock (_lock)
            {
                return _backlog.BackgroundCount;
            }
        }
    }

    public int Capacity => _slots.Capacity;

    /// <summary>
    /// Predicted milliseconds before a request of <paramref name="rank"/> and <paramref name="deadline"/>
    /// arriving now would start: the work queued ahead of it plus what the runs in flight have left,
    /// spread over the run slots; 0 when a slot is free and nothing waits ahead.
    /// </summary>
    public double WorkAheadMs(long rank, long deadline)
    {
        lock (_lock)
        {
            var queued = _backlog.WorkAhead(rank, deadline, static e => e.Value.PredictedMs);
            if (queued == 0 && _slots.Free > 0)
            {
                return 0;
            }

            var now = Stopwatch.GetTimestamp();
            var running = _inFlight.Sum(r => Math.Max(0, r.PredictedMs - Stopwatch.GetElapsedTime(r.Started, now).TotalMilliseconds));
            return (queued + running) / _slots.Capacity;
        }
    }

    /// <summary>
    /// Queues a request. Its task ends with its part of a run, with DEADLINE_EXCEEDED when it was
    /// dropped for a deadline it could no longer meet, or cancelled when <paramref name="queueToken"/>
    /// was cancelled while it waited (or its run was terminated).
    /// </summary>
    public Admission Enqueue(PendingRequest request, string batchKey, long rank, bool droppable, bool background, CancellationToken queueToken, out Task<BatchOutcome> outcome)
    {
        var entry = new QueueEntry<PendingRequest>(request, batchKey, request.Samples, rank, request.Budget.Deadline, droppable, background);
        request.Entry = entry;
        outcome = request.Completion.Task;
        lock (_lock)
        {
            if (!_backlog.TryEnqueue(entry))
            {
                return Admission.QueueFull;
            }

            _keys[batchKey] = request;
        }

        if (queueToken.CanBeCanceled)
        {
            var registration = queueToken.Register(static state =>
            {
                var (scheduler, pending, token) = ((BatchScheduler, PendingRequest, CancellationToken))state!;
                scheduler.Withdraw(pending, token);
            }, (this, request, queueToken));
            _ = outcome.ContinueWith(static (_, r) => ((CancellationTokenRegistration)r!).Dispose(), registration, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }

        Pump();
        lock (_lock)
        {
            return request.Taken ? Admission.Started : Admission.Queued;
        }
    }

    /// <summary>A message saying when to retry after a queue-full refusal.</summary>
    public string QueueFullMessage(string model, bool background)
    {
        var drain = WorkAheadMs(long.MaxValue, long.MaxValue);
        var bound = background ? _backlog.BackgroundCapacity : _backlog.Capacity;
        return string.Create(CultureInfo.InvariantCulture,
            $"Model '{model}' is overloaded: {bound} {(background ? "background " : "")}requests already wait for {_slots.Capacity} run slot(s) (EffServe:Selection:MaxQueued{(background ? "Background" : "")}Requests); retry after about {Math.Max(1, Math.Ceiling(drain))} ms, when the work queued now should be done.");
    }

    double IBatchPlanner.PredictMs(string batchKey, int samples)
    {
        var p = _keys[batchKey];
        return p.Latency.PredictMs(samples, p.LatencyThreshold) ?? 0;
    }

    int IBatchPlanner.MaxSamples(string batchKey) => _keys[batchKey].MaxBatchSamples;

    private void Withdraw(PendingRequest request, CancellationToken token)
    {
        bool removed;
        lock (_lock)
        {
            removed = _backlog.Remove(request.Entry!);
        }

        if (removed)
        {
            request.Completion.TrySetCanceled(token);
        }
    }

    /// <summary>Starts batches while a slot is free and requests wait.</summary>
    private void Pump()
    {
        while (true)
        {
            BatchPlan<PendingRequest> plan;
            lock (_lock)
            {
                if (_backlog.IsEmpty || !_slots.TryAcquire())
                {
                    return;
                }

                plan = _backlog.TakeBatch(_time.GetTimestamp(), _time, this);
                foreach (var e in plan.Batch)
                {
                    e.Value.Taken = true;
                }

                if (_backlog.IsEmpty)
                {
                    _keys.Clear();
                }
            }

            foreach (var e in plan.Expired)
            {
                Drop(e.Value);
            }

            if (plan.Batch.Count == 0)
            {
                _slots.Release();
                return;
            }

            var batch = plan.Batch.Select(e => e.Value).ToList();
            _ = Task.Run(() => Run(batch));
        }
    }

    private void Run(List<PendingRequest> batch)
    {
        var now = Stopwatch.GetTimestamp();
        var at = _time.GetUtcNow();
        foreach (var p in batch)
        {
            p.Dequeued = now;
            p.DequeuedAt = at;
        }

        var samples = batch.Sum(p => p.Samples);
        var first = batch[0];
        var flight = new InFlight(first.Latency.PredictMs(samples, first.LatencyThreshold) ?? 0, now);
        using var terminate = new CancellationTokenSource();
        var wanting = batch.Count;
        var registrations = new List<CancellationTokenRegistration>(batch.Count);
        lock (_lock)
        {
            _inFlight.Add(flight);
        }

        try
        {
            foreach (var p in batch)
            {
                registrations.Add(p.RunToken.Register(() =>
                {
                    if (Interlocked.Decrement(ref wanting) == 0)
                    {
                        terminate.Cancel();
                    }
                }));
            }

            _execute(batch, terminate.Token);
        }
        catch (OperationCanceledException)
        {
            foreach (var p in batch)
            {
                p.Completion.TrySetCanceled(p.RunToken.IsCancellationRequested ? p.RunToken : terminate.Token);
            }
        }
        catch (Exception e)
        {
            foreach (var p in batch)
            {
                p.Completion.TrySetException(e);
            }
        }
        finally
        {
            foreach (var r in registrations)
            {
                r.Dispose();
            }

            lock (_lock)
            {
                _inFlight.Remove(flight);
            }

            _slots.Release();
        }
    }

    private void Drop(PendingRequest p)
    {
        var left = p.Budget.RemainingMs(_time, _time.GetTimestamp()) ?? 0;
        var message = string.Create(CultureInfo.InvariantCulture,
            $"Model '{p.Model.Definition.Name}' dropped the request before running it: {p.Budget.Describe()} of {p.Budget.BudgetMs:0.###} ms can no longer be met ({Math.Max(0, left):0.###} ms left, variant '{p.Variant}' is predicted to take {p.PredictedMs:0.###} ms); retry with a larger budget or when the service is less loaded.");
        p.Completion.TrySetException(new RpcException(new Status(StatusCode.DeadlineExceeded, message)));
    }

    private sealed class InFlight(double predictedMs, long started)
    {
        public double PredictedMs { get; } = predictedMs;

        public long Started { get; } = started;
    }
}
