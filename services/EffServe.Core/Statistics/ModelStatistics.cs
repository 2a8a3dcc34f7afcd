using System.Collections.Concurrent;

namespace EffServe.Core.Statistics;

/// <summary>A count and the total nanoseconds spent, updated without locks.</summary>
public sealed class DurationCounter
{
    private long _count;
    private long _nanoseconds;

    public long Count => Interlocked.Read(ref _count);

    public long Nanoseconds => Interlocked.Read(ref _nanoseconds);

    public void Add(long nanoseconds)
    {
        Interlocked.Increment(ref _count);
        Interlocked.Add(ref _nanoseconds, Math.Max(0, nanoseconds));
    }
}

/// <summary>Durations of the runs of one batch size.</summary>
public sealed class BatchStatistics(int batchSize)
{
    public int BatchSize { get; } = batchSize;

    public DurationCounter ComputeInput { get; } = new();

    public DurationCounter ComputeInfer { get; } = new();

    public DurationCounter ComputeOutput { get; } = new();
}

/// <summary>
/// Per-model counters in the sense of Triton's statistics extension: an inference is one sample,
/// an execution is one run of the model (a batch), successes and failures are requests.
/// </summary>
public sealed class ModelStatistics
{
    private readonly ConcurrentDictionary<int, BatchStatistics> _batches = new();
    private long _inferenceCount;
    private long _executionCount;
    private long _lastInferenceMs;

    public long InferenceCount => Interlocked.Read(ref _inferenceCount);

    public long ExecutionCount => Interlocked.Read(ref _executionCount);

    /// <summary>Milliseconds since the Unix epoch of the last successful request; 0 before the first.</summary>
    public long LastInferenceMs => Interlocked.Read(ref _lastInferenceMs);

    public DurationCounter Success { get; } = new();

    public DurationCounter Fail { get; } = new();

    public DurationCounter Queue { get; } = new();

    public DurationCounter ComputeInput { get; } = new();

    public DurationCounter ComputeInfer { get; } = new();

    public DurationCounter ComputeOutput { get; } = new();

    /// <summary>Requests answered from the response cache, with the time their lookup took.</summary>
    public DurationCounter CacheHit { get; } = new();

    /// <summary>Requests the response cache could not answer, with the time spent looking up and filling.</summary>
    public DurationCounter CacheMiss { get; } = new();

    public IEnumerable<BatchStatistics> Batches => _batches.Values.OrderBy(b => b.BatchSize);

    /// <summary>Records a request that ran as one execution of <paramref name="batchSize"/> samples.</summary>
    public void RecordSuccess(int batchSize, RequestTimings timings, long nowUnixMs)
    {
        Interlocked.Add(ref _inferenceCount, batchSize);
        Interlocked.Increment(ref _executionCount);
        Interlocked.Exchange(ref _lastInferenceMs, nowUnixMs);
        Success.Add(timings.TotalNs);
        Queue.Add(timings.QueueNs);
        ComputeInput.Add(timings.InputNs);
        ComputeInfer.Add(timings.InferNs);
        ComputeOutput.Add(timings.OutputNs);
        var batch = _batches.GetOrAdd(batchSize, static size => new BatchStatistics(size));
        batch.ComputeInput.Add(timings.InputNs);
        batch.ComputeInfer.Add(timings.InferNs);
        batch.ComputeOutput.Add(timings.OutputNs);
    }

    public void RecordFailure(long totalNs) => Fail.Add(totalNs);

    /// <summary>
    /// Records a request answered from the cache: a success and <paramref name="batchSize"/>
    /// inferences, but no execution (nothing ran), as Triton counts cache hits.
    /// </summary>
    public void RecordCacheHit(int batchSize, long lookupNs, long totalNs, long nowUnixMs)
    {
        Interlocked.Add(ref _inferenceCount, batchSize);
        Interlocked.Exchange(ref _lastInferenceMs, nowUnixMs);
        Success.Add(totalNs);
        CacheHit.Add(lookupNs);
    }
}

/// <summary>Where one request's time went, in nanoseconds.</summary>
public readonly record struct RequestTimings(long QueueNs, long InputNs, long InferNs, long OutputNs, long TotalNs);
