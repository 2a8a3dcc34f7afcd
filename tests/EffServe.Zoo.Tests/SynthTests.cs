using EffServe.Zoo.Data;
using EffServe.Zoo.Onnx;
using EffServe.Zoo.Quantization;
using EffServe.Zoo.Synth;

namespace EffServe.Zoo.Tests;

public sealed class SynthTests
{
    [Fact]
    public void ResNet18_StructureAndFlopsOfThePublishedNetwork()
    {
        var synth = SynthModels.Build(SynthArchitecture.ResNet18, seed: 1, classes: 1000);
        var nodes = synth.Model.Graph.Node;

        Assert.Equal(20, nodes.Count(n => n.OpType == "Conv"));
        Assert.Equal(8, nodes.Count(n => n.OpType == "Add"));
        Assert.Equal(17, nodes.Count(n => n.OpType == "Relu"));
        Assert.Single(nodes, n => n.OpType == "MaxPool");
        Assert.Single(nodes, n => n.OpType == "Gemm");
        // Published: 11.69 M parameters, 1.82 G multiply-accumulates at 224×224 (batch norms folded).
        Assert.InRange(synth.Parameters, 11_600_000, 11_700_000);
        Assert.InRange(synth.MultiplyAccumulates, 1_800_000_000, 1_830_000_000);
    }

    [Fact]
    public void MobileNetV2_StructureAndFlopsOfThePublishedNetwork()
    {
        var synth = SynthModels.Build(SynthArchitecture.MobileNetV2, seed: 1, classes: 1000);
        var nodes = synth.Model.Graph.Node;

        Assert.Equal(52, nodes.Count(n => n.OpType == "Conv"));
        Assert.Equal(17, nodes.Count(n => n.OpType == "Conv" && Nodes.GetInt(n, "group", 1) > 1)); // depthwise
        Assert.Equal(10, nodes.Count(n => n.OpType == "Add"));
        Assert.Equal(35, nodes.Count(n => n.OpType == "Clip"));
        // Published: 3.5 M parameters, 300 M multiply-accumulates.
        Assert.InRange(synth.Parameters, 3_400_000, 3_600_000);
        Assert.InRange(synth.MultiplyAccumulates, 290_000_000, 310_000_000);
    }

    [Theory]
    [InlineData(SynthArchitecture.MobileNetV2)]
    [InlineData(SynthArchitecture.ResNet18)]
    public void Build_RunsInOrtAtBatch1WithSaneLogits(SynthArchitecture architecture)
    {
        var synth = SynthModels.Build(architecture, seed: 4, classes: 10);
        var samples = SampleSet.Random(synth.Model.InputSpecs(), true, samples: 1, seed: 0);

        using var session = OrtRunner.Open(synth.Model.ToBytes(), threads: 2);
        var outputs = ModelOutputs.Collect(session, samples, true, [SynthModels.OutputName], cancellationToken: TestContext.Current.CancellationToken);

        var logits = Assert.Single(outputs.Rows[SynthModels.OutputName]);
        Assert.Equal(10, logits.Length);
        Assert.All(logits, v => Assert.True(float.IsFinite(v)));
        // He-style weights keep activations in range: the logits neither vanish nor explode.
        Assert.InRange(logits.Max(Math.Abs), 0.01f, 100f);
    }

    [Fact]
    public void Build_SameSeedSameModel_OtherSeedOtherWeights()
    {
        var a = SynthModels.Build(SynthArchitecture.MobileNetV2, seed: 7, classes: 10).Model.ToBytes();
        var b = SynthModels.Build(SynthArchitecture.MobileNetV2, seed: 7, classes: 10).Model.ToBytes();
        var c = SynthModels.Build(SynthArchitecture.MobileNetV2, seed: 8, classes: 10).Model.ToBytes();

        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
    }

    [Fact]
    public void Quantize_MobileNetV2_DepthwiseClipAndResidualsRunAsIntegerKernels()
    {
        var model = SynthModels.Build(SynthArchitecture.MobileNetV2, seed: 2, classes: 10).Model;
        var samples = SampleSet.Random(model.InputSpecs(), true, samples: 2, seed: 1);

        var (quantized, summary, _) = QdqQuantizer.Quantize(model, samples, true, new CalibrationSettings(), SilentProgress.Instance, TestContext.Current.CancellationToken);
        var kernels = KernelInspector.Inspect(quantized.ToBytes());

        Assert.Equal(35, summary.FoldedActivations);
        Assert.DoesNotContain(quantized.Graph.Node, n => n.OpType == "Clip");
        Assert.Equal(52, kernels.Integer["QLinearConv"]);
        Assert.Equal(10, kernels.Integer["QLinearAdd"]);
        Assert.Equal(1, kernels.Integer["QLinearGlobalAveragePool"]);
        Assert.Equal(1, kernels.Integer["QGemm"]);
        Assert.Empty(kernels.FloatCompute);
    }
}
