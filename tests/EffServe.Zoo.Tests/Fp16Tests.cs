using EffServe.Zoo.Data;
using EffServe.Zoo.Fp16;
using EffServe.Zoo.Onnx;
using EffServe.Zoo.OnnxFormat;
using EffServe.Zoo.Tests.Support;

namespace EffServe.Zoo.Tests;

public sealed class Fp16Tests
{
    [Fact]
    public void Convert_Digits_AllWeightsFp16AndFp32AtTheEdges()
    {
        var (model, summary) = Fp16Converter.Convert(DigitsData.Model(), Fp16Converter.DefaultKeepFp32);
        var graph = model.Graph;

        Assert.All(graph.Initializer, t => Assert.Equal(ElementTypes.Float16, t.DataType));
        Assert.Equal(12, summary.ConvertedInitializers);
        Assert.Equal(0, summary.KeptInitializers);
        Assert.All(graph.Input.Concat(graph.Output), v => Assert.Equal(ElementTypes.Float, v.Type.TensorType.ElemType));

        // One Cast after the input, one before each of the three outputs.
        var toHalf = Assert.Single(graph.Node, n => n.OpType == "Cast" && Nodes.GetInt(n, "to", 0) == ElementTypes.Float16);
        Assert.Equal("image", toHalf.Input[0]);
        foreach (var output in graph.Output)
        {
            var producer = graph.Node.Single(n => n.Output.Contains(output.Name));
            Assert.Equal("Cast", producer.OpType);
            Assert.Equal(ElementTypes.Float, Nodes.GetInt(producer, "to", 0));
        }

        Assert.Equal(4, summary.Casts);
    }

    [Fact]
    public void Convert_Digits_RunsOnCpuAndAgreesWithFp32()
    {
        var fp32 = DigitsData.Model();
        var (fp16, _) = Fp16Converter.Convert(fp32, Fp16Converter.DefaultKeepFp32);

        foreach (var output in new[] { "logits", "exit1_logits", "exit2_logits" })
        {
            var c = OutputComparison.Measure(fp32, fp16, DigitsData.Samples, true, output, DigitsData.Labels, "eval", SilentProgress.Instance, TestContext.Current.CancellationToken);
            Assert.True(c.TopClassAgreement >= 0.995, $"{output}: agreement {c.TopClassAgreement:P2}");
            Assert.True(c.MaxAbsDifference <= 1e-3 * c.MaxAbsReference + 1e-2, $"{output}: difference {c.MaxAbsDifference} of {c.MaxAbsReference}");
            Assert.True(Math.Abs(c.AccuracyDeltaPoints!.Value) <= 0.5);
        }
    }

    [Fact]
    public void Convert_MobileNetV2_ClipBoundsInFp16AndCpuAgreesWhereItRuns()
    {
        var fp32 = Synth.SynthModels.Build(Synth.SynthArchitecture.MobileNetV2, seed: 5, classes: 10).Model;

        var (fp16, summary) = Fp16Converter.Convert(fp32, Fp16Converter.DefaultKeepFp32);

        Assert.All(fp16.Graph.Initializer, t => Assert.Equal(ElementTypes.Float16, t.DataType));
        Assert.Empty(summary.KeptNodes);
        Assert.Equal(2, summary.Casts);
        try
        {
            using (OrtRunner.Open(fp16.ToBytes(), threads: 1))
            {
            }
        }
        catch (ZooToolException e)
        {
            // Structure checked above; ONNX Runtime's CPU provider is not obliged to run FP16 graphs.
            Assert.Skip("ONNX Runtime's CPU provider does not run this FP16 graph, so only its structure was checked: " + e.Message);
        }

        var samples = SampleSet.Random(fp32.InputSpecs(), true, 2, seed: 4);
        var c = OutputComparison.Measure(fp32, fp16, samples, true, Synth.SynthModels.OutputName, null, "random", SilentProgress.Instance, TestContext.Current.CancellationToken);
        Assert.True(c.MaxAbsDifference <= 0.02 * c.MaxAbsReference, $"difference {c.MaxAbsDifference} of {c.MaxAbsReference}");
    }

    [Fact]
    public void Convert_BlockedSoftmax_StaysFp32WithCastsAround()
    {
        var model = TinyModels.MatMulSoftmax([1f, 2f, 3f, 4f, 5f, 6f, 7f, 8f]);

        var (converted, summary) = Fp16Converter.Convert(model, ["Softmax"]);
        var graph = converted.Graph;

        var matmul = graph.Node.Single(n => n.OpType == "MatMul");
        var softmax = graph.Node.Single(n => n.OpType == "Softmax");
        Assert.Equal(ElementTypes.Float16, graph.Initializer.Single(t => t.Name == matmul.Input[1]).DataType);
        // Softmax reads a Cast up to FP32 of the FP16 MatMul output, and writes the FP32 graph output itself.
        var up = graph.Node.Single(n => n.Output.Contains(softmax.Input[0]));
        Assert.Equal("Cast", up.OpType);
        Assert.Equal(ElementTypes.Float, Nodes.GetInt(up, "to", 0));
        Assert.Equal(matmul.Output[0], up.Input[0]);
        Assert.Equal("y", softmax.Output[0]);
        Assert.Equal(1, summary.KeptNodes["Softmax"]);
        Assert.Equal(2, summary.Casts);

        var samples = SampleSet.Random(model.InputSpecs(), true, 8, seed: 2);
        var c = OutputComparison.Measure(model, converted, samples, true, "y", null, "random", SilentProgress.Instance, TestContext.Current.CancellationToken);
        Assert.True(c.MaxAbsDifference < 1e-2, $"difference {c.MaxAbsDifference}");
    }

    [Fact]
    public void Convert_NoBlockList_SoftmaxInFp16()
    {
        var (converted, summary) = Fp16Converter.Convert(TinyModels.MatMulSoftmax([1f, 2f, 3f, 4f, 5f, 6f, 7f, 8f]), []);

        Assert.Empty(summary.KeptNodes);
        var softmax = converted.Graph.Node.Single(n => n.OpType == "Softmax");
        Assert.Equal("Cast", converted.Graph.Node.Single(n => n.Output.Contains("y")).OpType);
        Assert.NotEqual("y", softmax.Output[0]);
    }

    [Fact]
    public void Convert_OutOfRangeConstants_ClampedAndFlushed()
    {
        var model = TinyModels.MatMulSoftmax([1e6f, -1e6f, 1e-9f, 70000f, 1f, 2f, 3f, 4f]);

        var (converted, summary) = Fp16Converter.Convert(model, []);

        var weights = TensorData.ToFloats(converted.Graph.Initializer.Single());
        Assert.Equal([65504f, -65504f, 0f, 65504f, 1f, 2f, 3f, 4f], weights);
        Assert.Equal(3, summary.ClampedValues);
        Assert.Equal(1, summary.FlushedValues);
        Assert.All(weights, w => Assert.True(float.IsFinite(w)));
    }

    [Fact]
    public void Convert_CustomDomainOperator_UnsupportedUnlessKeptFp32()
    {
        var model = TinyModels.MatMulSoftmax([1f, 2f, 3f, 4f, 5f, 6f, 7f, 8f]).Clone();
        model.Graph.Node[1].Domain = "com.example";
        model.Graph.Node[1].OpType = "FancySoftmax";

        var error = Assert.Throws<ZooToolException>(() => Fp16Converter.Convert(model, Fp16Converter.DefaultKeepFp32));

        Assert.Equal(ZooToolError.UnsupportedOperator, error.Error);
        Assert.Contains("FancySoftmax", error.Message, StringComparison.Ordinal);
        Assert.Contains("--keep-fp32 FancySoftmax", error.Message, StringComparison.Ordinal);
    }
}
