using EffServe.Zoo.Onnx;
using EffServe.Zoo.OnnxFormat;

namespace EffServe.Zoo.Tests.Support;

/// <summary>Small graphs built in code, so a test can compute by hand what the tools must produce.</summary>
internal static class TinyModels
{
    /// <summary>A model around <paramref name="nodes"/>: inputs and outputs FP32 with a symbolic batch dimension first.</summary>
    public static OnnxModel Build(
        IEnumerable<(string Name, long[] Dims)> inputs,
        IEnumerable<(string Name, long[] Dims)> outputs,
        IEnumerable<TensorProto> initializers,
        IEnumerable<NodeProto> nodes,
        int opset = 17,
        int inputType = ElementTypes.Float)
    {
        var graph = new GraphProto { Name = "tiny" };
        foreach (var (name, dims) in inputs)
        {
            graph.Input.Add(new ValueInfoProto { Name = name, Type = ElementTypes.TensorType(inputType, dims) });
        }

        foreach (var (name, dims) in outputs)
        {
            graph.Output.Add(new ValueInfoProto { Name = name, Type = ElementTypes.TensorType(ElementTypes.Float, dims) });
        }

        graph.Initializer.AddRange(initializers);
        graph.Node.AddRange(nodes);
        var model = new ModelProto { IrVersion = 8, ProducerName = "effserve-tests", Graph = graph };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = opset });
        return OnnxModel.FromProto(model);
    }

    /// <summary>
    /// x [N, 1, 2, 2] → Conv 1×1 (weights [1, -2], bias [0.25, 0]) → Relu → MaxPool 2×2 → Flatten →
    /// Gemm (weights [3, 2], transB) → y [N, 3]: small enough to quantise by hand.
    /// </summary>
    public static OnnxModel ConvReluPoolGemm() => Build(
        [("x", [-1, 1, 2, 2])],
        [("y", [-1, 3])],
        [
            TensorData.FromFloats("conv.w", [2, 1, 1, 1], [1f, -2f]),
            TensorData.FromFloats("conv.b", [2], [0.25f, 0f]),
            TensorData.FromFloats("fc.w", [3, 2], [0.5f, -0.25f, 1f, 2f, -1f, 0.1f]),
            TensorData.FromFloats("fc.b", [3], [0.1f, 0.2f, 0.3f]),
        ],
        [
            Nodes.Create("Conv", "conv", ["x", "conv.w", "conv.b"], ["conv_out"], Nodes.Ints("kernel_shape", 1, 1)),
            Nodes.Create("Relu", "relu", ["conv_out"], ["relu_out"]),
            Nodes.Create("MaxPool", "pool", ["relu_out"], ["pool_out"], Nodes.Ints("kernel_shape", 2, 2), Nodes.Ints("strides", 2, 2)),
            Nodes.Create("Flatten", "flatten", ["pool_out"], ["flat"], Nodes.Int("axis", 1)),
            Nodes.Create("Gemm", "fc", ["flat", "fc.w", "fc.b"], ["y"], Nodes.Int("transB", 1)),
        ]);

    /// <summary>x [N, 4] → MatMul (weights [4, 3]) → Relu → MatMul (weights [3, 2]) → y [N, 2].</summary>
    public static OnnxModel MatMulChain() => Build(
        [("x", [-1, 4])],
        [("y", [-1, 2])],
        [
            TensorData.FromFloats("w1", [4, 3], [0.1f, -0.2f, 0.3f, 0.4f, 0.5f, -0.6f, 0.7f, 0.8f, 0.9f, -1f, 1.1f, 1.2f]),
            TensorData.FromFloats("w2", [3, 2], [1f, -1f, 0.5f, 0.25f, -0.75f, 2f]),
        ],
        [
            Nodes.Create("MatMul", "mm1", ["x", "w1"], ["h"]),
            Nodes.Create("Relu", "relu", ["h"], ["hr"]),
            Nodes.Create("MatMul", "mm2", ["hr", "w2"], ["y"]),
        ]);

    /// <summary>x [N, 4] → MatMul → Softmax → y: Softmax is on the default FP16 block list.</summary>
    public static OnnxModel MatMulSoftmax(float[] weights) => Build(
        [("x", [-1, 4])],
        [("y", [-1, 2])],
        [TensorData.FromFloats("w", [4, 2], weights)],
        [
            Nodes.Create("MatMul", "mm", ["x", "w"], ["logits"]),
            Nodes.Create("Softmax", "softmax", ["logits"], ["y"], Nodes.Int("axis", -1)),
        ]);

    /// <summary>A model whose only node is an If: control flow, which the tools do not handle.</summary>
    public static OnnxModel WithIf()
    {
        GraphProto Branch(string name, float value)
        {
            var branch = new GraphProto { Name = name };
            branch.Node.Add(Nodes.Create("Constant", name + "_c", [], [name + "_out"], Nodes.Tensor("value", TensorData.FromFloats("", [1, 4], [value, value, value, value]))));
            branch.Output.Add(new ValueInfoProto { Name = name + "_out", Type = ElementTypes.TensorType(ElementTypes.Float, [1, 4]) });
            return branch;
        }

        var ifNode = Nodes.Create("If", "choose", ["cond"], ["chosen"]);
        ifNode.Attribute.Add(new AttributeProto { Name = "then_branch", Type = AttributeProto.Types.AttributeType.Graph, G = Branch("then", 1f) });
        ifNode.Attribute.Add(new AttributeProto { Name = "else_branch", Type = AttributeProto.Types.AttributeType.Graph, G = Branch("else", 2f) });
        var model = Build(
            [("x", [-1, 4])],
            [("y", [-1, 4])],
            [TensorData.FromFloats("w", [4, 4], new float[16])],
            [
                Nodes.Create("ReduceSum", "sum", ["x"], ["total"], Nodes.Int("keepdims", 0)),
                Nodes.Create("Constant", "zero", [], ["zero"], Nodes.Tensor("value", TensorData.FromFloats("", [], [0f]))),
                Nodes.Create("Greater", "positive", ["total", "zero"], ["cond"]),
                ifNode,
                Nodes.Create("MatMul", "mm", ["x", "w"], ["xw"]),
                Nodes.Create("Add", "add", ["xw", "chosen"], ["y"]),
            ]);
        return model;
    }
}
