using EffServe.Core.Tensors;
using EffServe.Zoo.Data;
using EffServe.Zoo.Onnx;
using EffServe.Zoo.OnnxFormat;
using EffServe.Zoo.Quantization;
using EffServe.Zoo.Tests.Support;

namespace EffServe.Zoo.Tests;

/// <summary>
/// Quantises TinyModels.ConvReluPoolGemm on two known samples and checks every decision against a
/// hand computation:
/// x = [-1, 0, 1, 2] and [0.5, 0.5, 0.5, 0.5], so x lies in [-1, 2];
/// conv channel 0 = x + 0.25 in [-0.75, 2.25], channel 1 = -2x in [-4, 2]; after Relu [0, 2.25].
/// </summary>
public sealed class QdqPlacementTests
{
    private static readonly SampleSet s_samples = new(new Dictionary<string, NpyArray>
    {
        ["x"] = new(DataType.Fp32, [2, 1, 2, 2], Floats(-1f, 0f, 1f, 2f, 0.5f, 0.5f, 0.5f, 0.5f)),
    });

    private readonly OnnxModel _model = TinyModels.ConvReluPoolGemm();

    [Fact]
    public void Plan_TinyGraph_QuantizesInputAndConvOutputAndSharesThroughPoolAndFlatten()
    {
        var plan = QdqQuantizer.Plan(_model);

        Assert.Equal(["relu_out", "x"], plan.CalibrationTensors.Order(StringComparer.Ordinal));
        Assert.Equal(["flat", "pool_out", "relu_out", "x"], plan.QuantizedTensors.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Apply_TinyGraph_ScalesAndZeroPointsAsComputedByHand()
    {
        var graph = Quantize().Graph;

        // x: [-1, 2] → scale 3/255, real 0 at 1 / (3/255) = 85.
        AssertQuantize(graph, "x", 3f / 255f, 85);
        // Relu output: [0, 2.25] → scale 2.25/255, zero point 0; MaxPool and Flatten reuse them.
        AssertQuantize(graph, "relu_out", 2.25f / 255f, 0);
        AssertQuantize(graph, "pool_out", 2.25f / 255f, 0);
        AssertQuantize(graph, "flat", 2.25f / 255f, 0);
    }

    [Fact]
    public void Apply_TinyGraph_ReluFoldedAndGemmOutputLeftFloat()
    {
        var graph = Quantize().Graph;

        Assert.DoesNotContain(graph.Node, n => n.OpType == "Relu");
        Assert.Equal("relu_out", graph.Node.Single(n => n.OpType == "Conv").Output[0]);
        Assert.Equal(4, graph.Node.Count(n => n.OpType == "QuantizeLinear"));
        // The logits leave the graph as the Gemm computes them: no QuantizeLinear after it.
        Assert.Equal("y", graph.Node.Single(n => n.OpType == "Gemm").Output[0]);
        Assert.DoesNotContain(graph.Node, n => n.OpType == "QuantizeLinear" && n.Input[0] == "y");
        Assert.All(graph.Input.Concat(graph.Output), v => Assert.Equal(ElementTypes.Float, v.Type.TensorType.ElemType));
    }

    [Fact]
    public void Apply_ConvWeights_Int8PerChannelOnAxis0WithInt32Bias()
    {
        var graph = Quantize().Graph;
        var conv = graph.Node.Single(n => n.OpType == "Conv");
        var weightDq = Producer(graph, conv.Input[1]);
        var biasDq = Producer(graph, conv.Input[2]);

        Assert.Equal("DequantizeLinear", weightDq.OpType);
        Assert.Equal(0, Nodes.GetInt(weightDq, "axis", 1));
        var codes = Initializer(graph, weightDq.Input[0]);
        Assert.Equal(ElementTypes.Int8, codes.DataType);
        // Weights [1, -2]: each channel's peak maps to ±127.
        Assert.Equal([127L, -127L], TensorData.ToInt64s(codes));
        var weightScales = TensorData.ToFloats(Initializer(graph, weightDq.Input[1]));
        Assert.Equal([1f / 127f, 2f / 127f], weightScales);
        Assert.Equal([0L, 0L], TensorData.ToInt64s(Initializer(graph, weightDq.Input[2])));

        // Bias [0.25, 0] at scale x_scale × w_scale: 0.25 / ((3/255) × (1/127)) = 2698.75 → 2699.
        Assert.Equal("DequantizeLinear", biasDq.OpType);
        var bias = Initializer(graph, biasDq.Input[0]);
        Assert.Equal(ElementTypes.Int32, bias.DataType);
        Assert.Equal([2699L, 0L], TensorData.ToInt64s(bias));
        var biasScales = TensorData.ToFloats(Initializer(graph, biasDq.Input[1]));
        Assert.Equal(3f / 255f * (1f / 127f), biasScales[0], 1e-9f);
        Assert.Equal(3f / 255f * (2f / 127f), biasScales[1], 1e-9f);
    }

    [Fact]
    public void Apply_GemmWeights_PerOutputChannelOnTransposedAxis()
    {
        var graph = Quantize().Graph;
        var gemm = graph.Node.Single(n => n.OpType == "Gemm");
        var weightDq = Producer(graph, gemm.Input[1]);

        // transB = 1 stores the weight [N = 3, K = 2]: output channels on axis 0, peaks 0.5, 2 and 1.
        Assert.Equal(0, Nodes.GetInt(weightDq, "axis", 1));
        Assert.Equal([0.5f / 127f, 2f / 127f, 1f / 127f], TensorData.ToFloats(Initializer(graph, weightDq.Input[1])));
        var biasDq = Producer(graph, gemm.Input[2]);
        Assert.Equal(ElementTypes.Int32, Initializer(graph, biasDq.Input[0]).DataType);
        Assert.Equal(2.25f / 255f * (2f / 127f), TensorData.ToFloats(Initializer(graph, biasDq.Input[1]))[1], 1e-9f);
    }

    [Fact]
    public void Apply_TinyGraph_OrtRunsIntegerKernelsCloseToFp32()
    {
        var quantized = Quantize();

        var kernels = KernelInspector.Inspect(quantized.ToBytes());
        Assert.Equal(1, kernels.Integer.GetValueOrDefault("QLinearConv"));
        Assert.Equal(1, kernels.Integer.GetValueOrDefault("QGemm"));
        Assert.Empty(kernels.FloatCompute);

        var comparison = OutputComparison.Measure(_model, quantized, s_samples, true, "y", null, "test", SilentProgress.Instance, TestContext.Current.CancellationToken);
        Assert.True(comparison.MaxAbsDifference < 0.05 * comparison.MaxAbsReference, $"difference {comparison.MaxAbsDifference} of {comparison.MaxAbsReference}");
    }

    [Fact]
    public void MatMulChain_WeightsOnAxis1_OrtRunsIntegerMatMuls()
    {
        var model = TinyModels.MatMulChain();
        var samples = SampleSet.Random(model.InputSpecs(), true, 16, seed: 9);

        var (quantized, summary, _) = QdqQuantizer.Quantize(model, samples, true, new CalibrationSettings(), SilentProgress.Instance, TestContext.Current.CancellationToken);

        Assert.Equal(2, summary.QuantizedNodes["MatMul"]);
        var graph = quantized.Graph;
        foreach (var matmul in graph.Node.Where(n => n.OpType == "MatMul"))
        {
            var weightDq = Producer(graph, matmul.Input[1]);
            Assert.Equal(1, Nodes.GetInt(weightDq, "axis", 0));
            Assert.Equal(Initializer(graph, weightDq.Input[0]).Dims[1], Initializer(graph, weightDq.Input[1]).Dims[0]);
        }

        var kernels = KernelInspector.Inspect(quantized.ToBytes());
        Assert.Empty(kernels.FloatCompute);
        Assert.Equal(2, kernels.IntegerCount);
    }

    [Fact]
    public void Plan_ControlFlow_UnsupportedOperatorNamed()
    {
        var error = Assert.Throws<ZooToolException>(() => QdqQuantizer.Plan(TinyModels.WithIf()));

        Assert.Equal(ZooToolError.UnsupportedOperator, error.Error);
        Assert.Contains("'choose' (If)", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Plan_CustomDomain_UnsupportedOperatorNamed()
    {
        var model = TinyModels.ConvReluPoolGemm().Clone();
        model.Graph.Node.Add(Nodes.Create("FancyNorm", "norm", ["y"], ["z"]));
        model.Graph.Node[^1].Domain = "com.example";

        var error = Assert.Throws<ZooToolException>(() => QdqQuantizer.Plan(model));

        Assert.Equal(ZooToolError.UnsupportedOperator, error.Error);
        Assert.Contains("FancyNorm", error.Message, StringComparison.Ordinal);
        Assert.Contains("com.example", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Plan_OldOpset_ClearError()
    {
        var model = TinyModels.ConvReluPoolGemm().Clone();
        model.Proto.OpsetImport[0].Version = 11;

        var error = Assert.Throws<ZooToolException>(() => QdqQuantizer.Plan(model));

        Assert.Equal(ZooToolError.InvalidModel, error.Error);
        Assert.Contains("opset 11", error.Message, StringComparison.Ordinal);
    }

    private OnnxModel Quantize() =>
        QdqQuantizer.Quantize(_model, s_samples, true, new CalibrationSettings(), SilentProgress.Instance, TestContext.Current.CancellationToken).Model;

    private static void AssertQuantize(GraphProto graph, string tensor, float scale, byte zeroPoint)
    {
        var quantize = graph.Node.Single(n => n.OpType == "QuantizeLinear" && n.Input[0] == tensor);
        Assert.Equal(scale, TensorData.ToFloats(Initializer(graph, quantize.Input[1])).Single(), 1e-7f);
        var zero = Initializer(graph, quantize.Input[2]);
        Assert.Equal(ElementTypes.UInt8, zero.DataType);
        Assert.Equal(zeroPoint, TensorData.ToInt64s(zero).Single());
        Assert.Empty(zero.Dims);
    }

    private static NodeProto Producer(GraphProto graph, string tensor) => graph.Node.Single(n => n.Output.Contains(tensor));

    private static TensorProto Initializer(GraphProto graph, string name) => graph.Initializer.Single(t => t.Name == name);

    private static byte[] Floats(params float[] values) => values.SelectMany(BitConverter.GetBytes).ToArray();
}
