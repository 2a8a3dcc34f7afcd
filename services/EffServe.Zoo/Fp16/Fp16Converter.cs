using EffServe.Zoo.Onnx;
using EffServe.Zoo.OnnxFormat;

namespace EffServe.Zoo.Fp16;

/// <summary>What FP16 conversion did.</summary>
/// <param name="ConvertedInitializers">FP32 initializers (and constants) now stored as FP16.</param>
/// <param name="KeptInitializers">FP32 initializers left FP32 because only FP32 nodes read them.</param>
/// <param name="KeptNodes">Operator → nodes left in FP32 (the block list, and operators whose output type is fixed).</param>
/// <param name="Casts">Cast nodes added at the graph's edges and around FP32 nodes.</param>
/// <param name="ClampedValues">Constant values beyond ±65504 set to the largest FP16 value.</param>
/// <param name="FlushedValues">Non-zero constant values too small for FP16 (below 2^-24) that became 0.</param>
public sealed record Fp16Summary(
    int ConvertedInitializers,
    int KeptInitializers,
    IReadOnlyDictionary<string, int> KeptNodes,
    int Casts,
    long ClampedValues,
    long FlushedValues);

/// <summary>
/// Converts an FP32 model to FP16 weights and compute with FP32 inputs and outputs: every FP32
/// initializer and constant becomes FP16 (clamped to the FP16 range), every node computes in FP16
/// except the operators of the block list, and Cast nodes convert at the graph's inputs and
/// outputs and around the FP32 nodes. Casts are shared per tensor, and two FP32 nodes in a row
/// exchange FP32 directly.
/// </summary>
public static class Fp16Converter
{
    /// <summary>The largest finite FP16 value.</summary>
    public const float Fp16Max = 65504f;

    /// <summary>The smallest positive FP16 value (a subnormal).</summary>
    public const float Fp16MinPositive = 5.9604645e-8f;

    /// <summary>
    /// Operators kept in FP32 unless the caller says otherwise: exponentials and logarithms
    /// whose FP16 results overflow or lose precision, and reductions whose FP16 sums lose it.
    /// </summary>
    public static IReadOnlyList<string> DefaultKeepFp32 { get; } =
    [
        "Softmax", "LogSoftmax", "Exp", "Log", "Pow", "CumSum",
        "ReduceSum", "ReduceMean", "ReduceProd", "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp", "ReduceL1", "ReduceL2",
        "TopK", "NonMaxSuppression", "RoiAlign", "Range",
    ];

    /// <summary>Operators whose float outputs do not follow their inputs' type: always kept in FP32.</summary>
    private static readonly HashSet<string> s_fixedOutputType = new(StringComparer.Ordinal)
    {
        "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "RandomNormal", "RandomUniform",
        "RandomNormalLike", "RandomUniformLike", "EyeLike", "Multinomial", "Bernoulli",
    };

    /// <summary>Inputs that the ONNX specification types as FP32 whatever the data's type.</summary>
    private static readonly HashSet<(string, int)> s_fp32Inputs = [("Resize", 2), ("Upsample", 1)];

    /// <exception cref="ZooToolException">The model has an operator outside ai.onnx that is not kept in FP32, or control flow (UnsupportedOperator); or nothing to convert (InvalidModel).</exception>
    public static (OnnxModel Model, Fp16Summary Summary) Convert(OnnxModel model, IReadOnlyCollection<string> keepFp32)
    {
        var keep = new HashSet<string>(keepFp32, StringComparer.Ordinal);
        foreach (var node in model.Graph.Node)
        {
            if (Nodes.HasSubgraphs(node))
            {
                throw new ZooToolException(ZooToolError.UnsupportedOperator, $"node {Nodes.Describe(node)} carries subgraphs; FP16 conversion does not handle control flow ({node.OpType}).");
            }

            if (!OnnxModel.IsStandard(node) && !keep.Contains(node.OpType))
            {
                throw new ZooToolException(ZooToolError.UnsupportedOperator, $"node {Nodes.Describe(node)} is operator '{node.OpType}' of domain '{node.Domain}', whose FP16 support is unknown; keep it in FP32 with --keep-fp32 {node.OpType}.");
            }
        }

        var types = TypeInference.Infer(model);
        var result = model.Clone();
        var graph = result.Graph;
        var names = new NameScope(graph);
        var index = new GraphIndex(graph);
        var initializers = result.InitializersByName();
        bool IsFloat(string tensor) =>
            initializers.TryGetValue(tensor, out var t) ? t.DataType == ElementTypes.Float : types.ElementType(tensor) == ElementTypes.Float;

        if (graph.Node.SelectMany(n => n.Input.Concat(n.Output)).All(t => !IsFloat(t)))
        {
            throw new ZooToolException(ZooToolError.InvalidModel, "nothing to convert: no node of the model reads or writes FP32 tensors.");
        }

        var fp32Nodes = new HashSet<NodeProto>(ReferenceEqualityComparer.Instance);
        foreach (var node in graph.Node.Where(n => keep.Contains(n.OpType) || s_fixedOutputType.Contains(n.OpType)))
        {
            fp32Nodes.Add(node);
        }

        bool WantsFp32(NodeProto node, int slot) => fp32Nodes.Contains(node) || s_fp32Inputs.Contains((node.OpType, slot));

        // Where each FP32 tensor lives after conversion: graph inputs stay FP32; outputs of FP16
        // nodes become FP16; initializers get an FP16 twin when an FP16 reader needs one.
        var fp16Tensors = new HashSet<string>(StringComparer.Ordinal);
        foreach (var node in graph.Node.Where(n => !fp32Nodes.Contains(n)))
        {
            foreach (var output in node.Output.Where(o => o.Length > 0 && IsFloat(o)))
            {
                fp16Tensors.Add(output);
            }
        }

        long clamped = 0, flushed = 0;
        var converted = 0;
        var halfOf = new Dictionary<string, string>(StringComparer.Ordinal);
        var castOf = new Dictionary<(string, bool), string>();
        var casts = new List<NodeProto>();

        string HalfInitializer(string name)
        {
            if (!halfOf.TryGetValue(name, out var half))
            {
                var source = initializers[name];
                var onlyHalfReaders = index.ConsumersOf(name).All(c => Enumerable.Range(0, c.Input.Count).All(i => c.Input[i] != name || !WantsFp32(c, i)))
                    && !index.Outputs.Contains(name) && !graph.Input.Any(i => i.Name == name);
                half = onlyHalfReaders ? name : names.Unique(name + "_fp16");
                var tensor = ToHalf(source, half, ref clamped, ref flushed);
                if (onlyHalfReaders)
                {
                    graph.Initializer[graph.Initializer.IndexOf(source)] = tensor;
                }
                else
                {
                    graph.Initializer.Add(tensor);
                }

                converted++;
                halfOf[name] = half;
            }

            return half;
        }

        string Cast(string tensor, bool toHalf)
        {
            if (!castOf.TryGetValue((tensor, toHalf), out var output))
            {
                output = names.Unique(tensor + (toHalf ? "_fp16" : "_fp32"));
                casts.Add(Nodes.Create("Cast", names.Unique(tensor + (toHalf ? "_CastToFp16" : "_CastToFp32")), [tensor], [output],
                    Nodes.Int("to", toHalf ? ElementTypes.Float16 : ElementTypes.Float)));
                castOf[(tensor, toHalf)] = output;
            }

            return output;
        }

        // Graph outputs computed in FP16: the producer writes a renamed FP16 tensor and a Cast
        // writes the output under its own name in FP32.
        var renamed = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var output in graph.Output.Where(o => fp16Tensors.Contains(o.Name)))
        {
            var half = names.Unique(output.Name + "_fp16");
            renamed[output.Name] = half;
            fp16Tensors.Add(half);
        }

        foreach (var node in graph.Node)
        {
            for (var i = 0; i < node.Output.Count; i++)
            {
                if (renamed.TryGetValue(node.Output[i], out var half))
                {
                    node.Output[i] = half;
                }
            }

            for (var i = 0; i < node.Input.Count; i++)
            {
                var input = node.Input[i];
                if (input.Length == 0)
                {
                    continue;
                }

                if (renamed.TryGetValue(input, out var half))
                {
                    input = node.Input[i] = half;
                }

                if (!IsFloat(input) && !fp16Tensors.Contains(input))
                {
                    continue;
                }

                var wantsHalf = !WantsFp32(node, i);
                if (initializers.TryGetValue(input, out var initializer) && initializer.DataType == ElementTypes.Float)
                {
                    if (wantsHalf)
                    {
                        node.Input[i] = HalfInitializer(input);
                    }

                    continue;
                }

                var isHalf = fp16Tensors.Contains(input);
                if (isHalf != wantsHalf)
                {
                    node.Input[i] = Cast(input, wantsHalf);
                }
            }

            if (!fp32Nodes.Contains(node))
            {
                ConvertAttributes(node, ref clamped, ref flushed, ref converted);
            }
        }

        foreach (var (output, half) in renamed)
        {
            casts.Add(Nodes.Create("Cast", names.Unique(output + "_CastToFp32"), [half], [output], Nodes.Int("to", ElementTypes.Float)));
        }

        foreach (var value in graph.ValueInfo)
        {
            if (fp16Tensors.Contains(value.Name) && value.Type?.TensorType is { ElemType: ElementTypes.Float } tensor)
            {
                tensor.ElemType = ElementTypes.Float16;
            }
        }

        graph.Node.AddRange(casts);
        var ordered = GraphIndex.TopologicalSort(graph);
        graph.Node.Clear();
        graph.Node.AddRange(ordered);
        Quantization.QdqQuantizer.RemoveUnused(graph);

        var kept = fp32Nodes.GroupBy(n => n.OpType, StringComparer.Ordinal).OrderBy(g => g.Key, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);
        var keptInitializers = graph.Initializer.Count(t => t.DataType == ElementTypes.Float);
        result.Proto.MetadataProps.Add(new StringStringEntryProto
        {
            Key = "effserve.fp16",
            Value = "float16 weights and compute, float32 inputs and outputs; kept in float32: " + (kept.Count == 0 ? "none" : string.Join(", ", kept.Keys)),
        });
        return (result, new Fp16Summary(converted, keptInitializers, kept, casts.Count, clamped, flushed));
    }

    /// <summary>Constants that live in attributes: Constant values, ConstantOfShape fills, Cast targets.</summary>
    private static void ConvertAttributes(NodeProto node, ref long clamped, ref long flushed, ref int converted)
    {
        foreach (var attribute in node.Attribute)
        {
            if (attribute.T is { DataType: ElementTypes.Float } tensor)
            {
                attribute.T = ToHalf(tensor, tensor.Name, ref clamped, ref flushed);
                converted++;
            }
        }

        switch (node.OpType)
        {
            case "Cast" when Nodes.Find(node, "to") is { I: ElementTypes.Float } to:
                to.I = ElementTypes.Float16;
                break;
            case "ConstantOfShape" when Nodes.Find(node, "value") is null:
                // The default fill is an FP32 zero.
                node.Attribute.Add(Nodes.Tensor("value", TensorData.FromFloatsAsHalf("", [1], [0f])));
                break;
            case "Constant" when Nodes.Find(node, "value_float") is { } single:
                node.Attribute.Remove(single);
                node.Attribute.Add(Nodes.Tensor("value", ToHalf(TensorData.FromFloats("", [], [single.F]), "", ref clamped, ref flushed)));
                converted++;
                break;
            case "Constant" when Nodes.Find(node, "value_floats") is { } many:
                node.Attribute.Remove(many);
                node.Attribute.Add(Nodes.Tensor("value", ToHalf(TensorData.FromFloats("", [many.Floats.Count], [.. many.Floats]), "", ref clamped, ref flushed)));
                converted++;
                break;
        }
    }

    /// <summary>An FP16 copy of an FP32 tensor, values clamped to ±65504 and counted when clamped or flushed to 0.</summary>
    private static TensorProto ToHalf(TensorProto source, string name, ref long clamped, ref long flushed)
    {
        var values = TensorData.ToFloats(source);
        for (var i = 0; i < values.Length; i++)
        {
            var v = values[i];
            if (float.IsNaN(v))
            {
                continue;
            }

            if (Math.Abs(v) > Fp16Max)
            {
                values[i] = Math.Sign(v) * Fp16Max;
                clamped++;
            }
            else if (v != 0 && Math.Abs(v) < Fp16MinPositive / 2)
            {
                flushed++;
            }
        }

        var half = TensorData.FromFloatsAsHalf(name, source.Dims, values);
        half.DocString = source.DocString;
        return half;
    }
}
