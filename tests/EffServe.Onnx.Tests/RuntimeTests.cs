using System.Runtime.InteropServices;
using EffServe.Core.Tensors;
using EffServe.Core.Zoo;
using EffServe.Testing;
using Microsoft.Extensions.Logging.Abstractions;

namespace EffServe.Onnx.Tests;

public sealed class RuntimeTests
{
    private static readonly ZooLoader s_loader = new(new OnnxGraphReader());

    [Fact]
    public void Read_DigitsStage_ReportsNamesTypesAndSymbolicBatch()
    {
        var graph = new OnnxGraphReader().Read(Path.Combine(RepoPaths.Zoo, "digits", "early-exit", "stage2.onnx"));

        var input = Assert.Single(graph.Inputs);
        Assert.Equal(new TensorSpec("features1", DataType.Fp32, [-1, 16, 8, 8]).ToString(), input.ToString());
        Assert.Equal(["exit2_logits", "features2"], graph.Outputs.Select(o => o.Name));
        Assert.Equal([-1L, 32, 4, 4], graph.Outputs[1].Shape);
    }

    [Fact]
    public void Read_NotAnOnnxFile_ThrowsInvalidData()
    {
        var path = Path.GetTempFileName();
        try
        {
            File.WriteAllText(path, "this is not a model");
            var e = Assert.Throws<InvalidDataException>(() => new OnnxGraphReader().Read(path));
            Assert.False(string.IsNullOrWhiteSpace(e.Message));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Load_CudaVariantOnCpuBuild_IsSkippedWithReasonAndCpuServes()
    {
        using var runtime = ModelRuntime.Load(s_loader.LoadModel(Path.Combine(RepoPaths.FixtureZoo, "add")), new OnnxOptions(), NullLogger.Instance);

        var gpu = runtime.Variants.Single(v => v.Definition.Name == "gpu");
        Assert.False(gpu.Loaded);
        Assert.Contains("cuda", gpu.SkipReason, StringComparison.Ordinal);
        Assert.Equal("cpu", runtime.DefaultVariant);
        Assert.True(runtime.IsReady);
    }

    [Fact]
    public void Run_AddModel_ComputesXPlusOne()
    {
        using var runtime = ModelRuntime.Load(s_loader.LoadModel(Path.Combine(RepoPaths.FixtureZoo, "add")), new OnnxOptions(), NullLogger.Instance);
        float[] x = [1, 2, 3, 4, -1, -2, -3, -4.5f];
        var input = NamedTensor.FromBytes("x", DataType.Fp32, [2, 4], MemoryMarshal.AsBytes(x.AsSpan()).ToArray());

        var result = runtime.Run("cpu", [input], ["y"], 1.0, TestContext.Current.CancellationToken);

        Assert.Null(result.ExitStages);
        Assert.Equal([2L, 4], result.Outputs[0].Shape);
        Assert.Equal(x.Select(v => v + 1), MemoryMarshal.Cast<byte, float>(result.Outputs[0].Data.Span).ToArray());
    }

    [Fact]
    public void Run_TypedIdentity_CarriesEveryDatatypeUnchanged()
    {
        var model = s_loader.LoadModel(Path.Combine(RepoPaths.FixtureZoo, "typed"));
        using var runtime = ModelRuntime.Load(model, new OnnxOptions(), NullLogger.Instance);
        var random = new Random(7);
        var inputs = model.Inputs.Select(spec => spec.DataType == DataType.Bytes
            ? NamedTensor.FromStrings(spec.Name, [2, 3], Enumerable.Range(0, 6).Select(i => (ReadOnlyMemory<byte>)System.Text.Encoding.UTF8.GetBytes($"s{i}é")).ToList())
            : NamedTensor.FromBytes(spec.Name, spec.DataType, [2, 3], RandomBytes(random, spec.DataType, 6))).ToList();

        var result = runtime.Run("identity", inputs, model.Outputs.Select(o => o.Name).ToList(), 1.0, TestContext.Current.CancellationToken);

        for (var i = 0; i < inputs.Count; i++)
        {
            var output = result.Outputs[i];
            Assert.Equal(inputs[i].DataType, output.DataType);
            Assert.Equal(inputs[i].Shape, output.Shape);
            if (output.DataType == DataType.Bytes)
            {
                Assert.Equal(inputs[i].Strings!.Select(s => s.ToArray()), output.Strings!.Select(s => s.ToArray()));
            }
            else
            {
                Assert.Equal(inputs[i].Data.ToArray(), output.Data.ToArray());
            }
        }
    }

    private static byte[] RandomBytes(Random random, DataType type, int count)
    {
        var bytes = new byte[count * type.ElementSize()];
        random.NextBytes(bytes);
        if (type == DataType.Bool)
        {
            for (var i = 0; i < bytes.Length; i++)
            {
                bytes[i] &= 1;
            }
        }

        if (type is DataType.Fp16 or DataType.Fp32 or DataType.Fp64)
        {
            // Keep floats finite so that NaN payloads cannot differ.
            var size = type.ElementSize();
            for (var i = 0; i < count; i++)
            {
                bytes[(i * size) + size - 1] &= 0x3F;
            }
        }

        return bytes;
    }
}
