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

    public Task WaitAsync(CancellationToken cancellationToken) => _slots.WaitAsync(cancellationToken);

    public void Release() => _slots.Release();

    public void Dispose() => _slots.Dispose();
}
