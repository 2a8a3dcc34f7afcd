using EffServe.Onnx;
using Microsoft.Extensions.Options;

namespace EffServe.Inference.Serving;

/// <summary>
/// Bounds the ONNX Runtime runs in flight so that threads per run × runs ≤ cores: waiting then
/// happens here, where it is measured (effserve.queue_us), not in the operating system's scheduler.
/// </summary>
public sealed class RunSlots : IDisposable
{
    private readonly SemaphoreSlim _slots;

    public RunSlots(IOptions<InferenceServiceOptions> options, IOptions<OnnxOptions> onnx, ILogger<RunSlots> logger)
    {
        var cores = Environment.ProcessorCount;
        var threads = onnx.Value.IntraOpThreads <= 0 ? cores : onnx.Value.IntraOpThreads;
        Capacity = options.Value.MaxConcurrentRuns > 0 ? options.Value.MaxConcurrentRuns : Math.Max(1, cores / threads);
        _slots = new SemaphoreSlim(Capacity, Capacity);
        InferenceLog.RunSlots(logger, Capacity, threads, cores);
    }

    public int Capacity { get; }

    /// <summary>Runs that can start now.</summary>
    public int Free => _slots.CurrentCount;

    public Task WaitAsync(CancellationToken cancellationToken) => _slots.WaitAsync(cancellationToken);

    /// <summary>Takes a slot if one is free now.</summary>
    public bool TryAcquire() => _slots.Wait(0, CancellationToken.None);

    /// <summary>Gives a slot back and tells whoever waits for one (the batch scheduler).</summary>
    public void Release()
    {
        _slots.Release();
        Released?.Invoke();
    }

    /// <summary>Raised after every <see cref="Release"/>.</summary>
    public event Action? Released;

    public void Dispose() => _slots.Dispose();
}
