using System.Globalization;
using EffServe.Core.Jobs;
using StackExchange.Redis;

namespace EffServe.Redis;

/// <summary>A job as its hash holds it.</summary>
public sealed record JobRecord(string Id, string Model, string State, long Items, long Succeeded, long Failed, int Priority, long SubmittedUnixMs, string Owner = "");

/// <summary>One work item taken from a model's queue: the stream entry and the (job, item) it names.</summary>
public sealed record WorkItem(string Queue, string EntryId, string JobId, int Index);

public enum AttemptVerdict
{
    /// <summary>Nothing to do: the job is gone or cancelled, or the item already has its result.</summary>
    Skip,

    /// <summary>Run the item (its input is attached).</summary>
    Run,

    /// <summary>The item used up its attempts: dead-letter it with its last error.</summary>
    GiveUp,
}

/// <summary>What starting an attempt found.</summary>
public sealed record AttemptStart(AttemptVerdict Verdict, int Attempt, byte[]? Input, string LastError);

/// <summary>
/// The job queue in Redis: a hash per job (state and counters), its inputs and results (hashes by
/// item index), an events stream of results in the order they were written, and per model two
/// streams of work items (normal and high priority) read by one consumer group across all the
/// model's replicas. Result writes are idempotent: the first result of an item wins and is counted
/// and announced once, so redelivery never duplicates one.
/// </summary>
public sealed class RedisJobStore(RedisConnection redis)
{
    private const string BeginScript = """
        local state = redis.call('HGET', KEYS[1], 'state')
        if (not state) or state == 'cancelled' then return {0, 0, ''} end
        if redis.call('HEXISTS', KEYS[3], ARGV[1]) == 1 then return {0, 0, ''} end
        local n = redis.call('HINCRBY', KEYS[4], ARGV[1], 1)
        local ttl = redis.call('PTTL', KEYS[1])
        if ttl > 0 then redis.call('PEXPIRE', KEYS[4], ttl) end
        if n > tonumber(ARGV[2]) then return {2, n, redis.call('HGET', KEYS[4], 'e' .. ARGV[1]) or ''} end
        return {1, n, redis.call('HGET', KEYS[2], ARGV[1]) or ''}
        """;

    private const string CompleteScript = """
        if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
        if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 0 then return 0 end
        redis.call('HINCRBY', KEYS[1], ARGV[3], 1)
        redis.call('XADD', KEYS[3], '*', 'item', ARGV[1])
        local ttl = redis.call('PTTL', KEYS[1])
        if ttl > 0 then
          redis.call('PEXPIRE', KEYS[2], ttl)
          redis.call('PEXPIRE', KEYS[3], ttl)
        end
        local f = redis.call('HMGET', KEYS[1], 'succeeded', 'failed', 'items', 'state')
        if tonumber(f[1] or '0') + tonumber(f[2] or '0') >= tonumber(f[3]) and f[4] == 'queued' then
          redis.call('HSET', KEYS[1], 'state', 'completed')
        end
        return 1
        """;

    private const string CancelScript = """
        local state = redis.call('HGET', KEYS[1], 'state')
        if state == 'queued' then
          redis.call('HSET', KEYS[1], 'state', 'cancelled')
          return 'cancelled'
        end
        return state or ''
        """;

    private static readonly RedisValue[] s_jobFields =
        [JobFields.Model, JobFields.State, JobFields.Items, JobFields.Succeeded, JobFields.Failed, JobFields.Priority, JobFields.Submitted, JobFields.Owner];

    public bool IsConfigured => redis.IsConfigured;

    /// <summary>Stores a job and queues its items; the job's keys expire after <paramref name="ttl"/>.</summary>
    public async Task SubmitAsync(string id, string model, string owner, int priority, IReadOnlyList<byte[]> items, TimeSpan ttl, long submittedUnixMs, CancellationToken cancellationToken)
    {
        var bytes = items.Sum(i => (long)i.Length);
        var timeout = TimeSpan.FromSeconds(2) + TimeSpan.FromMilliseconds(items.Count * 0.05) + TimeSpan.FromMilliseconds(bytes / 10_000.0);
        await EnsureQueuesAsync(model, cancellationToken).ConfigureAwait(false);
        await redis.RunAsync(
            async db =>
            {
                var batch = db.CreateBatch();
                var pending = new List<Task>();
                var inputs = JobKeys.Inputs(id);
                for (var start = 0; start < items.Count; start += 256)
                {
                    var chunk = Enumerable.Range(start, Math.Min(256, items.Count - start))
                        .Select(i => new HashEntry(i, items[i])).ToArray();
                    pending.Add(batch.HashSetAsync(inputs, chunk));
                }

                pending.Add(batch.KeyExpireAsync(inputs, ttl));
                var job = JobKeys.Job(id);
                pending.Add(batch.HashSetAsync(job,
                [
                    new HashEntry(JobFields.Model, model),
                    new HashEntry(JobFields.State, JobStates.Queued),
                    new HashEntry(JobFields.Items, items.Count),
                    new HashEntry(JobFields.Succeeded, 0),
                    new HashEntry(JobFields.Failed, 0),
                    new HashEntry(JobFields.Priority, priority),
                    new HashEntry(JobFields.Submitted, submittedUnixMs),
                    new HashEntry(JobFields.Owner, owner),
                ]));
                pending.Add(batch.KeyExpireAsync(job, ttl));
                var queue = JobKeys.Queue(model, priority);
                for (var i = 0; i < items.Count; i++)
                {
                    pending.Add(batch.StreamAddAsync(queue, [new NameValueEntry(JobFields.JobId, id), new NameValueEntry(JobFields.Index, i)]));
                }

                batch.Execute();
                await Task.WhenAll(pending).ConfigureAwait(false);
            },
            cancellationToken,
            timeout).ConfigureAwait(false);
    }

    public async Task<JobRecord?> GetAsync(string id, CancellationToken cancellationToken)
    {
        var values = await redis.RunAsync(db => db.HashGetAsync(JobKeys.Job(id), s_jobFields), cancellationToken).ConfigureAwait(false);
        if (values[0].IsNull)
        {
            return null;
        }

        return new JobRecord(id, values[0]!, values[1]!, Long(values[2]), Long(values[3]), Long(values[4]), (int)Long(values[5]), Long(values[6]), values[7].IsNull ? "" : (string)values[7]!);
    }

    /// <summary>The results present among items [<paramref name="from"/>, <paramref name="from"/> + <paramref name="count"/>), in item order.</summary>
    public async Task<IReadOnlyList<(int Index, byte[] Payload)>> GetResultsAsync(string id, int from, int count, CancellationToken cancellationToken)
    {
        if (count <= 0)
        {
            return [];
        }

        var fields = Enumerable.Range(from, count).Select(i => (RedisValue)i).ToArray();
        var values = await redis.RunAsync(db => db.HashGetAsync(JobKeys.Results(id), fields), cancellationToken).ConfigureAwait(false);
        var results = new List<(int, byte[])>();
        for (var i = 0; i < values.Length; i++)
        {
            if (!values[i].IsNull)
            {
                results.Add((from + i, (byte[])values[i]!));
            }
        }

        return results;
    }

    /// <summary>Results written after event <paramref name="after"/> ("0-0" for all), oldest first, with their payloads.</summary>
    public async Task<IReadOnlyList<(string EventId, int Index, byte[] Payload)>> ReadResultsAfterAsync(string id, string after, int count, CancellationToken cancellationToken)
    {
        return await redis.RunAsync(
            async db =>
            {
                var events = await db.StreamReadAsync(JobKeys.Events(id), after, count).ConfigureAwait(false);
                if (events.Length == 0)
                {
                    return (IReadOnlyList<(string, int, byte[])>)[];
                }

                var indices = events.Select(e => (int)Long(e[JobFields.Index])).ToArray();
                var payloads = await db.HashGetAsync(JobKeys.Results(id), indices.Select(i => (RedisValue)i).ToArray()).ConfigureAwait(false);
                var list = new List<(string, int, byte[])>(events.Length);
                for (var i = 0; i < events.Length; i++)
                {
                    if (!payloads[i].IsNull)
                    {
                        list.Add((events[i].Id!, indices[i], (byte[])payloads[i]!));
                    }
                }

                return list;
            },
            cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Cancels a queued job; the job's state afterwards (empty when there is no such job).</summary>
    public async Task<string> CancelAsync(string id, CancellationToken cancellationToken)
    {
        var state = await redis.RunAsync(db => db.ScriptEvaluateAsync(CancelScript, [JobKeys.Job(id)]), cancellationToken).ConfigureAwait(false);
        return (string?)state ?? "";
    }

    /// <summary>Creates the model's queues and their consumer group when missing.</summary>
    public Task EnsureQueuesAsync(string model, CancellationToken cancellationToken) =>
        redis.RunAsync(db => CreateGroupsAsync(db, model), cancellationToken);

    /// <summary>New work items for <paramref name="consumer"/>, high priority first; at most <paramref name="count"/>.</summary>
    public Task<List<WorkItem>> ReadAsync(string model, string consumer, int count, CancellationToken cancellationToken) =>
        redis.RunAsync(db => TakeAsync(db, model, count, (queue, wanted) => db.StreamReadGroupAsync(queue, JobKeys.Group, consumer, ">", wanted)), cancellationToken);

    /// <summary>
    /// Takes over items another consumer took more than <paramref name="minIdle"/> ago and never
    /// acknowledged (it died or stalled), high priority first; at most <paramref name="count"/>.
    /// </summary>
    public Task<List<WorkItem>> ReclaimAsync(string model, string consumer, TimeSpan minIdle, int count, CancellationToken cancellationToken) =>
        redis.RunAsync(
            db => TakeAsync(db, model, count, async (queue, wanted) =>
                (await db.StreamAutoClaimAsync(queue, JobKeys.Group, consumer, (long)minIdle.TotalMilliseconds, "0-0", wanted).ConfigureAwait(false)).ClaimedEntries),
            cancellationToken);

    /// <summary>Counts an attempt at an item and says whether to run it (with its input), skip it, or give up on it.</summary>
    public async Task<AttemptStart> BeginAttemptAsync(WorkItem item, int maxAttempts, CancellationToken cancellationToken)
    {
        var result = await redis.RunAsync(
            db => db.ScriptEvaluateAsync(
                BeginScript,
                [JobKeys.Job(item.JobId), JobKeys.Inputs(item.JobId), JobKeys.Results(item.JobId), JobKeys.Attempts(item.JobId)],
                [item.Index, maxAttempts]),
            cancellationToken).ConfigureAwait(false);
        var parts = (RedisResult[])result!;
        var verdict = (AttemptVerdict)(int)parts[0];
        var attempt = (int)parts[1];
        return verdict switch
        {
            AttemptVerdict.Run => new AttemptStart(verdict, attempt, (byte[]?)parts[2], ""),
            AttemptVerdict.GiveUp => new AttemptStart(verdict, attempt - 1, null, (string?)parts[2] ?? ""),
            _ => new AttemptStart(verdict, 0, null, ""),
        };
    }

    /// <summary>Remembers the error of a failed attempt, for the dead letter if the item never succeeds.</summary>
    public Task RecordErrorAsync(WorkItem item, string error, CancellationToken cancellationToken) =>
        redis.RunAsync(db => db.HashSetAsync(JobKeys.Attempts(item.JobId), "e" + item.Index.ToString(CultureInfo.InvariantCulture), error), cancellationToken);

    /// <summary>
    /// Writes an item's result unless it has one (idempotent), counts it as succeeded or failed and
    /// announces it; true when this call wrote it.
    /// </summary>
    public async Task<bool> CompleteAsync(WorkItem item, byte[] payload, bool failed, CancellationToken cancellationToken)
    {
        var written = await redis.RunAsync(
            db => db.ScriptEvaluateAsync(
                CompleteScript,
                [JobKeys.Job(item.JobId), JobKeys.Results(item.JobId), JobKeys.Events(item.JobId)],
                [item.Index, payload, failed ? JobFields.Failed : JobFields.Succeeded]),
            cancellationToken).ConfigureAwait(false);
        return (int)written == 1;
    }

    /// <summary>Appends a dead letter (job, item, error) to the model's dead-letter stream.</summary>
    public Task DeadLetterAsync(string model, WorkItem item, string error, CancellationToken cancellationToken) =>
        redis.RunAsync(
            db => db.StreamAddAsync(JobKeys.DeadLetters(model), [new NameValueEntry(JobFields.JobId, item.JobId), new NameValueEntry(JobFields.Index, item.Index), new NameValueEntry(JobFields.Error, error)]),
            cancellationToken);

    /// <summary>Acknowledges and deletes a finished work item.</summary>
    public Task AckAsync(WorkItem item, CancellationToken cancellationToken) =>
        redis.RunAsync(
            async db =>
            {
                var ack = db.StreamAcknowledgeAsync(item.Queue, JobKeys.Group, item.EntryId);
                var delete = db.StreamDeleteAsync(item.Queue, [item.EntryId]);
                await Task.WhenAll(ack, delete).ConfigureAwait(false);
            },
            cancellationToken);

    /// <summary>Up to <paramref name="count"/> items from the model's queues, high priority first; a missing group is created.</summary>
    private static async Task<List<WorkItem>> TakeAsync(IDatabase db, string model, int count, Func<string, int, Task<StreamEntry[]>> take)
    {
        var items = new List<WorkItem>();
        foreach (var queue in Queues(model))
        {
            if (items.Count >= count)
            {
                break;
            }

            try
            {
                var entries = await take(queue, count - items.Count).ConfigureAwait(false);
                items.AddRange(entries.Where(e => !e.IsNull).Select(e => ToItem(queue, e)));
            }
            catch (RedisServerException e) when (e.Message.Contains("NOGROUP", StringComparison.Ordinal))
            {
                await CreateGroupsAsync(db, model).ConfigureAwait(false);
            }
        }

        return items;
    }

    private static IEnumerable<string> Queues(string model) => [JobKeys.Queue(model, 1), JobKeys.Queue(model, 0)];

    private static async Task<bool> CreateGroupsAsync(IDatabase db, string model)
    {
        foreach (var queue in Queues(model))
        {
            try
            {
                await db.StreamCreateConsumerGroupAsync(queue, JobKeys.Group, "0", createStream: true).ConfigureAwait(false);
            }
            catch (RedisServerException e) when (e.Message.Contains("BUSYGROUP", StringComparison.Ordinal))
            {
                // already there
            }
        }

        return true;
    }

    private static WorkItem ToItem(string queue, StreamEntry entry) =>
        new(queue, entry.Id!, (string?)entry[JobFields.JobId] ?? "", (int)Long(entry[JobFields.Index]));

    private static long Long(RedisValue value) => value.IsNull ? 0 : (long)value;
}
