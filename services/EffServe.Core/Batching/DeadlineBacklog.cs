namespace EffServe.Core.Batching;

/// <summary>A queued request as the batcher sees it.</summary>
/// <typeparam name="T">What the caller keeps with it.</typeparam>
/// <param name="Value">The caller's request.</param>
/// <param name="BatchKey">Requests batch together only when their keys are equal (same model, variant, threshold, shapes, outputs).</param>
/// <param name="Samples">Samples the request brings to a batch.</param>
/// <param name="Rank">Priority rank: lower runs first (1 is the highest priority; background work ranks last).</param>
/// <param name="Deadline">Timestamp (<see cref="TimeProvider.GetTimestamp"/>) its answer must be computed by; <see cref="long.MaxValue"/> when it has none.</param>
/// <param name="Droppable">May be dropped before compute when it can no longer meet its deadline (not for best-effort and background requests).</param>
/// <param name="Background">Runs only on capacity no foreground request is waiting for, and has its own bound.</param>
public sealed record QueueEntry<T>(T Value, string BatchKey, int Samples, long Rank, long Deadline, bool Droppable, bool Background)
{
    internal long Sequence { get; set; }
}

/// <summary>How long a batch runs and how large one may be, per batch key.</summary>
public interface IBatchPlanner
{
    /// <summary>Predicted milliseconds to run <paramref name="samples"/> samples of <paramref name="batchKey"/>; 0 when unknown.</summary>
    double PredictMs(string batchKey, int samples);

    /// <summary>Most samples one batch of <paramref name="batchKey"/> may hold: 1 where batching does not pay.</summary>
    int MaxSamples(string batchKey);
}

/// <summary>A batch to run, and the requests dropped because they can no longer make their deadline.</summary>
public sealed record BatchPlan<T>(IReadOnlyList<QueueEntry<T>> Batch, IReadOnlyList<QueueEntry<T>> Expired);

/// <summary>
/// The requests waiting for a run slot, ordered by priority, then deadline, then arrival. Bounded:
/// foreground and background requests each have their own capacity. Not thread-safe: the caller
/// holds one lock around it.
/// </summary>
public sealed class DeadlineBacklog<T>
{
    private readonly SortedSet<QueueEntry<T>> _entries = new(Order.Instance);
    private long _sequence;

    public DeadlineBacklog(int capacity, int backgroundCapacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(backgroundCapacity, 1);
        Capacity = capacity;
        BackgroundCapacity = backgroundCapacity;
    }

    public int Capacity { get; }

    public int BackgroundCapacity { get; }

    /// <summary>Foreground requests waiting.</summary>
    public int Count { get; private set; }

    /// <summary>Background requests waiting.</summary>
    public int BackgroundCount { get; private set; }

    /// <summary>True when a foreground request is waiting.</summary>
    public bool HasForeground => Count > 0;

    public bool IsEmpty => _entries.Count == 0;

    /// <summary>Adds a request; false when its class of requests is at capacity.</summary>
    public bool TryEnqueue(QueueEntry<T> entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        if (entry.Background ? BackgroundCount >= BackgroundCapacity : Count >= Capacity)
        {
            return false;
        }

        entry.Sequence = ++_sequence;
        _entries.Add(entry);
        if (entry.Background)
        {
            BackgroundCount++;
        }
        else
        {
            Count++;
        }

        return true;
    }

    /// <summary>Takes a request out (cancelled or expired); false when it is not queued (already taken).</summary>
    public bool Remove(QueueEntry<T> entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        if (!_entries.Remove(entry))
        {
            return false;
        }

        if (entry.Background)
        {
            BackgroundCount--;
        }
        else
        {
            Count--;
        }

        return true;
    }

    /// <summary>
    /// Sum of <paramref name="cost"/> over the foreground requests that would run before one of
    /// rank <paramref name="rank"/> and deadline <paramref name="deadline"/> arriving now.
    /// </summary>
    public double WorkAhead(long rank, long deadline, Func<QueueEntry<T>, double> cost)
    {
        ArgumentNullException.ThrowIfNull(cost);
        var sum = 0.0;
        foreach (var e in _entries)
        {
            if (e.Background || e.Rank > rank || (e.Rank == rank && e.Deadline > deadline))
            {
                // Everything after this entry in the order comes after the new request too.
                break;
            }

            sum += cost(e);
        }

        return sum;
    }

    /// <summary>
    /// Forms the next batch at <paramref name="now"/>. First every droppable request that cannot
    /// meet its deadline even alone is taken out as expired. Then the first request in the order
    /// leads a batch; requests of the same batch key join it in order while the batch stays within
    /// the key's size limit and its predicted completion still meets the earliest deadline in it.
    /// Background requests are taken only when no foreground one waits. Null batch when empty.
    /// </summary>
    public BatchPlan<T> TakeBatch(long now, TimeProvider time, IBatchPlanner planner)
    {
        ArgumentNullException.ThrowIfNull(time);
        ArgumentNullException.ThrowIfNull(planner);
        var expired = new List<QueueEntry<T>>();
        foreach (var e in _entries)
        {
            if (e.Droppable && e.Deadline != long.MaxValue && Finish(now, time, planner.PredictMs(e.BatchKey, e.Samples)) > e.Deadline)
            {
                expired.Add(e);
            }
        }

        foreach (var e in expired)
        {
            Remove(e);
        }

        if (_entries.Count == 0)
        {
            return new BatchPlan<T>([], expired);
        }

        var head = _entries.Min!;
        var batch = new List<QueueEntry<T>> { head };
        var samples = head.Samples;
        var earliest = head.Droppable ? head.Deadline : long.MaxValue;
        var limit = planner.MaxSamples(head.BatchKey);
        if (limit > samples)
        {
            foreach (var e in _entries)
            {
                if (ReferenceEquals(e, head) || e.BatchKey != head.BatchKey || e.Background != head.Background)
                {
                    continue;
                }

                if (samples + e.Samples > limit)
                {
                    continue;
                }

                var deadline = Math.Min(earliest, e.Droppable ? e.Deadline : long.MaxValue);
                if (deadline != long.MaxValue && Finish(now, time, planner.PredictMs(head.BatchKey, samples + e.Samples)) > deadline)
                {
                    // With this request the batch would make someone late: leave it for the next one.
                    continue;
                }

                batch.Add(e);
                samples += e.Samples;
                earliest = deadline;
            }
        }

        foreach (var e in batch)
        {
            Remove(e);
        }

        return new BatchPlan<T>(batch, expired);
    }

    private static long Finish(long now, TimeProvider time, double ms) =>
        now + (long)(ms / 1000.0 * time.TimestampFrequency);

    /// <summary>Foreground before background, then priority rank, deadline, arrival.</summary>
    private sealed class Order : IComparer<QueueEntry<T>>
    {
        public static readonly Order Instance = new();

        public int Compare(QueueEntry<T>? x, QueueEntry<T>? y)
        {
            if (ReferenceEquals(x, y))
            {
                return 0;
            }

            if (x is null || y is null)
            {
                return x is null ? -1 : 1;
            }

            var c = x.Background.CompareTo(y.Background);
            if (c == 0)
            {
                c = x.Rank.CompareTo(y.Rank);
            }

            if (c == 0)
            {
                c = x.Deadline.CompareTo(y.Deadline);
            }

            return c != 0 ? c : x.Sequence.CompareTo(y.Sequence);
        }
    }
}
