using System.Runtime.InteropServices;
using EffServe.Core.Tensors;
using EffServe.Core.Zoo;
using EffServe.Testing;
using Microsoft.Extensions.Logging.Abstractions;

namespace EffServe.Onnx.Tests;

/// <summary>
/// The GPU path: runs only where a CUDA variant really starts (the GPU build, `make build-gpu`, on a
/// machine with a GPU); everywhere else it is skipped with the reason the variant was skipped.
/// </summary>
[Trait("Requires", "GPU")]
public sealed class GpuTests
{
    [Fact]
    public void Run_CudaVariant_AgreesWithCpuVariant()
    {
        var model = new ZooLoader(new OnnxGraphReader()).LoadModel(Path.Combine(RepoPaths.FixtureZoo, "add"));
        using var runtime = ModelRuntime.Load(model, new OnnxOptions(), NullLogger.Instance);
        var gpu = runtime.Variants.Single(v => v.Definition.Name == "gpu");
        Assert.SkipUnless(gpu.Loaded, $"No usable CUDA device in this process: {gpu.SkipReason}");

        float[] x = [0.5f, -1, 2, 3, 4, 5, 6, 7];
        var input = NamedTensor.FromBytes("x", DataType.Fp32, [2, 4], MemoryMarshal.AsBytes(x.AsSpan()).ToArray());
        var onGpu = runtime.Run("gpu", [input], ["y"], 1.0, TestContext.Current.CancellationToken);
        var onCpu = runtime.Run("cpu", [input], ["y"], 1.0, TestContext.Current.CancellationToken);

        var a = MemoryMarshal.Cast<byte, float>(onGpu.Outputs[0].Data.Span).ToArray();
        var b = MemoryMarshal.Cast<byte, float>(onCpu.Outputs[0].Data.Span).ToArray();
        Assert.Equal(b.Length, a.Length);
        for (var i = 0; i < a.Length; i++)
        {
            Assert.True(Math.Abs(a[i] - b[i]) <= 1e-3, $"element {i}: cuda {a[i]}, cpu {b[i]}");
        }
    }
}
