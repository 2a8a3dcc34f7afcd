using System.Security.Cryptography;
using EffServe.Contracts.Inference;
using EffServe.Contracts.Jobs;
using EffServe.Inference.Serving;
using EffServe.Redis;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.Options;

namespace EffServe.Inference.Jobs;

/// <summary>
/// Runs job items on this replica: reads its models' work streams through the shared consumer
/// group, at most <see cref="JobOptions.MaxInFlight"/> items at once (more are read only as one
/// finishes), each through the engine at background priority. A result is written (idempotently)
/// before its item is acknowledged, so a crash in between only repeats the item. Items another
/// consumer took and never acknowledged within the visibility timeout are claimed here
/// (XAUTOCLAIM); an item that fails <see cref="JobOptions.MaxAttempts"/> times is dead-lettered
/// with its last error. On shutdown, unfinished items are left to the other replicas.
/// </summary>
public sealed partial class JobWorker : BackgroundService
{
    private readonly InferenceEngine _engine;
    private readonly ModelRepository _models;
    private readonly RedisJobStore _store;
    private readonly JobOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<JobWorker> _logger;
    private readonly string _consumer;

    public JobWorker(InferenceEngine engine, ModelRepository models, RedisJobStore store, IOptions<JobOptions> options, TimeProvider time, ILogger<JobWorker> logger)
    {
        _engine = engine;
        _models = models;
        _store = store;
        _options = options.Value;
        _time = time;
        _logger = logger;
        _consumer = $"{Environment.MachineName}-{Environment.ProcessId}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4))}";
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!_store.IsConfigured || !_options.WorkerEnabled)
        {
            return;
        }

        await Task.Yield();
        using var slots = new SemaphoreSlim(_options.MaxInFlight, _options.MaxInFlight);
        var running = new List<Task>();
        var poll = TimeSpan.FromMilliseconds(_options.PollIntervalMs);
        var idle = poll;
        var visibility = TimeSpan.FromSeconds(_options.VisibilityTimeoutSeconds);
        var claimEvery = TimeSpan.FromSeconds(Math.Max(0.25, _options.VisibilityTimeoutSeconds / 2));
        var lastClaim = _time.GetTimestamp();
        Started(_logger, _consumer, _options.MaxInFlight);
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                await slots.WaitAsync(stoppingToken).ConfigureAwait(false);
                slots.Release();
                var free = slots.CurrentCount;
                var items = new List<(string Model, WorkItem Item)>();
                try
                {
                    var claim = _time.GetElapsedTime(lastClaim) >= claimEvery;
                    if (claim)
                    {
                        lastClaim = _time.GetTimestamp();
                    }

                    foreach (var model in _models.Models.Where(m => m.Runtime.IsReady).Select(m => m.Definition.Name))
                    {
                        if (claim && items.Count < free)
                        {
                            items.AddRange((await _store.ReclaimAsync(model, _consumer, visibility, free - items.Count, stoppingToken).ConfigureAwait(false)).Select(i => (model, i)));
                        }

                        if (items.Count < free)
                        {
                            items.AddRange((await _store.ReadAsync(model, _consumer, free - items.Count, stoppingToken).ConfigureAwait(false)).Select(i => (model, i)));
                        }
                    }
                }
                catch (RedisUnavailableException)
                {
                    // The connection's breaker logs the outage once; wait for it to pass.
                }

                if (items.Count == 0)
                {
                    await Task.Delay(idle, _time, stoppingToken).ConfigureAwait(false);
                    idle = TimeSpan.FromTicks(Math.Min(idle.Ticks * 2, poll.Ticks * 10));
                    continue;
                }

                idle = poll;
                running.RemoveAll(t => t.IsCompleted);
                foreach (var (model, item) in items)
                {
                    await slots.WaitAsync(stoppingToken).ConfigureAwait(false);
                    running.Add(RunAsync(model, item, slots, stoppingToken));
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // stopping
        }

        await Task.WhenAll(running).ConfigureAwait(false);
    }

    private async Task RunAsync(string model, WorkItem item, SemaphoreSlim slots, CancellationToken stoppingToken)
    {
        try
        {
            await ProcessAsync(model, item, stoppingToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Left unacknowledged: another replica claims it after the visibility timeout.
        }
        catch (RedisUnavailableException)
        {
            // Left unacknowledged; the item comes back after the visibility timeout.
        }
        finally
        {
            slots.Release();
        }
    }

    private async Task ProcessAsync(string model, WorkItem item, CancellationToken stoppingToken)
    {
        var start = await _store.BeginAttemptAsync(item, _options.MaxAttempts, stoppingToken).ConfigureAwait(false);
        switch (start.Verdict)
        {
            case AttemptVerdict.Skip:
                await _store.AckAsync(item, stoppingToken).ConfigureAwait(false);
                return;
            case AttemptVerdict.GiveUp:
                await DeadLetterAsync(model, item, start.LastError, start.Attempt, stoppingToken).ConfigureAwait(false);
                return;
        }

        string error;
        try
        {
            var request = ModelInferRequest.Parser.ParseFrom(start.Input ?? []);
            var response = await _engine.InferAsync(request, InferenceOrigin.Background, stoppingToken).ConfigureAwait(false);
            var payload = new JobResult { Index = (ulong)item.Index, Response = response }.ToByteArray();
            await _store.CompleteAsync(item, payload, failed: false, stoppingToken).ConfigureAwait(false);
            await _store.AckAsync(item, stoppingToken).ConfigureAwait(false);
            return;
        }
        catch (RpcException e) when (!stoppingToken.IsCancellationRequested)
        {
            error = JobErrors.Format(JobErrors.CodeName(e.StatusCode), e.Status.Detail);
        }
        catch (InvalidProtocolBufferException e)
        {
            error = JobErrors.Format("INTERNAL", $"The stored item cannot be read: {e.Message}");
        }

        ItemFailed(_logger, item.JobId, item.Index, start.Attempt, error);
        if (start.Attempt >= _options.MaxAttempts)
        {
            await DeadLetterAsync(model, item, error, start.Attempt, stoppingToken).ConfigureAwait(false);
        }
        else
        {
            // Not acknowledged: it is claimed again (here or on another replica) after the visibility timeout.
            await _store.RecordErrorAsync(item, error, stoppingToken).ConfigureAwait(false);
        }
    }

    private async Task DeadLetterAsync(string model, WorkItem item, string error, int attempts, CancellationToken stoppingToken)
    {
        var payload = new JobResult { Index = (ulong)item.Index, Error = JobErrors.Parse(error, attempts) }.ToByteArray();
        if (await _store.CompleteAsync(item, payload, failed: true, stoppingToken).ConfigureAwait(false))
        {
            await _store.DeadLetterAsync(model, item, error, stoppingToken).ConfigureAwait(false);
            DeadLettered(_logger, item.JobId, item.Index, attempts, error);
        }

        await _store.AckAsync(item, stoppingToken).ConfigureAwait(false);
    }

    [LoggerMessage(EventId = 60, Level = LogLevel.Information, Message = "Job worker {Consumer} started: up to {MaxInFlight} items at once, at background priority")]
    private static partial void Started(ILogger logger, string consumer, int maxInFlight);

    [LoggerMessage(EventId = 61, Level = LogLevel.Debug, Message = "Job {JobId} item {Index} failed attempt {Attempt}: {Error}")]
    private static partial void ItemFailed(ILogger logger, string jobId, int index, int attempt, string error);

    [LoggerMessage(EventId = 62, Level = LogLevel.Warning, Message = "Job {JobId} item {Index} dead-lettered after {Attempts} attempts: {Error}")]
    private static partial void DeadLettered(ILogger logger, string jobId, int index, int attempts, string error);
}
