using System.Runtime.InteropServices;
using EffServe.Core.Tensors;
using EffServe.Core.Zoo;
using EffServe.Testing;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.ML.OnnxRuntime;

namespace EffServe.Onnx.Tests;

/// <summary>The early-exit runner against the full digits model, on the real evaluation set.</summary>
public sealed class EarlyExitTests : IDisposable
{
    private readonly ModelRuntime _runtime;
    private readonly InferenceSession _full;
    private readonly NpyArray _images;

    public EarlyExitTests()
    {
        var model = new ZooLoader(new OnnxGraphReader()).LoadModel(Path.Combine(RepoPaths.Zoo, "digits"));
        _runtime = ModelRuntime.Load(model, new OnnxOptions { WarmupRuns = 0 }, NullLogger.Instance);
        _full = new InferenceSession(model.FindVariant("fp32")!.Stages[0].Path);
        _images = NpyArray.Read(model.Evaluation!.InputFiles["image"]);
    }

    public void Dispose()
    {
        _runtime.Dispose();
        _full.Dispose();
    }

    [Fact]
    public void Run_ThresholdOne_RunsEveryStageAndEqualsFullModel()
    {
        var (input, count) = Batch(0, 64);
        var result = _runtime.Run("early-exit", [input], ["logits"], exitThreshold: 1.0, TestContext.Current.CancellationToken);

        Assert.All(result.ExitStages!, s => Assert.Equal(3, s));
        Assert.Equal(3, result.StagesRun);
        Assert.Equal(3L * count, result.StageSampleRuns);
        AssertClose(FullModel(input, "logits"), Floats(result.Outputs[0]));
    }

    [Fact]
    public void Run_ThresholdZero_ExitsAtStageOneWithFirstExitLogits()
    {
        var (input, _) = Batch(64, 64);
        var result = _runtime.Run("early-exit", [input], ["logits"], exitThreshold: 0.0, TestContext.Current.CancellationToken);

        Assert.All(result.ExitStages!, s => Assert.Equal(1, s));
        Assert.Equal(1, result.StagesRun);
        AssertClose(FullModel(input, "exit1_logits"), Floats(result.Outputs[0]));
    }

    [Theory]
    [InlineData(0.5)]
    [InlineData(0.9)]
    [InlineData(0.99)]
    public void Run_MixedExits_EachSampleGetsTheLogitsOfTheExitItTook(double threshold)
    {
        var (input, count) = Batch(128, 64);
        var result = _runtime.Run("early-exit", [input], ["logits"], threshold, TestContext.Current.CancellationToken);

        var exits = new[] { FullModel(input, "exit1_logits"), FullModel(input, "exit2_logits"), FullModel(input, "logits") };
        var actual = Floats(result.Outputs[0]);
        long work = 0;
        for (var i = 0; i < count; i++)
        {
            var stage = result.ExitStages![i];
            work += stage;
            AssertClose(exits[stage - 1].AsSpan(i * 10, 10).ToArray(), actual.AsSpan(i * 10, 10).ToArray());

            // A sample left as early as the rule allows: no earlier exit was confident enough.
            for (var k = 0; k < stage - 1; k++)
            {
                var p = Core.EarlyExit.ExitRule.TopProbability(exits[k].AsSpan(i * 10, 10));
                Assert.False(Core.EarlyExit.ExitRule.ShouldExit(p, threshold));
            }

            if (stage < 3)
            {
                Assert.True(Core.EarlyExit.ExitRule.ShouldExit(Core.EarlyExit.ExitRule.TopProbability(exits[stage - 1].AsSpan(i * 10, 10)), threshold));
            }
        }

        Assert.Equal(work, result.StageSampleRuns);
    }

    [Fact]
    public void StageModels_ChainedByHand_ReproduceFullModelExits()
    {
        var variant = _runtime.Model.FindVariant("early-exit")!;
        var (input, _) = Batch(0, 32);
        using var s1 = new InferenceSession(variant.Stages[0].Path);
        using var s2 = new InferenceSession(variant.Stages[1].Path);
        using var s3 = new InferenceSession(variant.Stages[2].Path);
        using var x = OrtValue.CreateTensorValueFromMemory(MemoryMarshal.Cast<byte, float>(input.Data.Span).ToArray(), input.Shape);
        using var o1 = s1.Run(new RunOptions(), ["image"], [x], ["exit1_logits", "features1"]);
        using var o2 = s2.Run(new RunOptions(), ["features1"], [o1[1]], ["exit2_logits", "features2"]);
        using var o3 = s3.Run(new RunOptions(), ["features2"], [o2[1]], ["logits"]);

        AssertClose(FullModel(input, "exit1_logits"), o1[0].GetTensorDataAsSpan<float>().ToArray());
        AssertClose(FullModel(input, "exit2_logits"), o2[0].GetTensorDataAsSpan<float>().ToArray());
        AssertClose(FullModel(input, "logits"), o3[0].GetTensorDataAsSpan<float>().ToArray());
    }

    [Fact]
    public void Run_CancelledToken_ThrowsOperationCanceled()
    {
        var (input, _) = Batch(0, 4);
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        Assert.Throws<OperationCanceledException>(() => _runtime.Run("fp32", [input], ["logits"], 1.0, cts.Token));
    }

    private (NamedTensor Tensor, int Count) Batch(int start, int count)
    {
        var row = _images.RowBytes;
        var bytes = _images.Data.AsMemory(start * row, count * row);
        return (NamedTensor.FromBytes("image", DataType.Fp32, [count, 1, 8, 8], bytes), count);
    }

    private float[] FullModel(NamedTensor input, string output)
    {
        using var x = OrtValue.CreateTensorValueFromMemory(MemoryMarshal.Cast<byte, float>(input.Data.Span).ToArray(), input.Shape);
        using var results = _full.Run(new RunOptions(), ["image"], [x], [output]);
        return results[0].GetTensorDataAsSpan<float>().ToArray();
    }

    private static float[] Floats(NamedTensor tensor) => MemoryMarshal.Cast<byte, float>(tensor.Data.Span).ToArray();

    private static void AssertClose(float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (var i = 0; i < expected.Length; i++)
        {
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-5, $"element {i}: expected {expected[i]}, got {actual[i]}");
        }
    }
}
