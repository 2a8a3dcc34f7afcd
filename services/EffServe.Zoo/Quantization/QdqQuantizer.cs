using EffServe.Zoo.Data;
using EffServe.Zoo.Onnx;
using EffServe.Zoo.OnnxFormat;

namespace EffServe.Zoo.Quantization;

/// <summary>What role a node plays in the quantised graph.</summary>
internal enum QuantRole
{
    /// <summary>Conv, Gemm or MatMul with constant weights: becomes QLinearConv, QGemm, MatMulIntegerToFloat ...</summary>
    Compute,

    /// <summary>Add of two quantised tensors: becomes QLinearAdd.</summary>
    Add,

    /// <summary>Average pooling of a quantised tensor: becomes QLinearAveragePool / QLinearGlobalAveragePool.</summary>
    Pool,

    /// <summary>Moves or selects values without new ones (MaxPool, Flatten, Reshape ...): runs on uint8, same parameters.</summary>
    PassThrough,
}

/// <summary>A Conv, Gemm or MatMul whose weights become int8 per channel.</summary>
/// <param name="Weight">The weight initializer.</param>
/// <param name="Axis">The weight's output-channel axis.</param>
/// <param name="Bias">The bias initializer, when the node has one.</param>
internal sealed record ComputeNode(string Weight, int Axis, string? Bias);

/// <summary>Where an activation's quantisation parameters come from.</summary>
/// <param name="RangeOf">The FP32 tensor whose calibrated range sets them; null when shared.</param>
/// <param name="SameAs">The tensor whose parameters this one reuses (outputs of pass-through nodes).</param>
internal sealed record ActivationSource(string? RangeOf, string? SameAs);

/// <summary>
/// The quantiser's decisions for one model, made before calibration: which nodes become integer
/// kernels, which activations get QuantizeLinear/DequantizeLinear pairs, and which Relu/Clip nodes
/// fold into the quantisation that follows them. Nodes are named by their position in the graph.
/// </summary>
public sealed class QdqPlan
{
    internal QdqPlan(
        Dictionary<int, QuantRole> roles,
        Dictionary<int, ComputeNode> compute,
        Dictionary<int, int> folds,
        Dictionary<string, ActivationSource> activations)
    {
        Roles = roles;
        Compute = compute;
        Folds = folds;
        Activations = activations;
    }

    internal Dictionary<int, QuantRole> Roles { get; }

    internal Dictionary<int, ComputeNode> Compute { get; }

    /// <summary>Producer node → the Relu/Clip node after it that the producer's quantisation replaces.</summary>
    internal Dictionary<int, int> Folds { get; }

    /// <summary>Activation tensor (named as after folding) → where its parameters come from.</summary>
    internal Dictionary<string, ActivationSource> Activations { get; }

    /// <summary>The FP32 tensors calibration must measure.</summary>
    public IReadOnlyCollection<string> CalibrationTensors =>
        Activations.Values.Select(a => a.RangeOf).OfType<string>().Distinct(StringComparer.Ordinal).ToList();

    /// <summary>The activation tensors that get a QuantizeLinear/DequantizeLinear pair.</summary>
    public IReadOnlyCollection<string> QuantizedTensors => Activations.Keys;
}

/// <summary>What quantisation did to a model.</summary>
/// <param name="QuantizedNodes">Operator → how many of its nodes now run as integer kernels (by the QDQ rules).</param>
/// <param name="QuantizedTensors">Activations with a QuantizeLinear/DequantizeLinear pair.</param>
/// <param name="FoldedActivations">Relu/Clip nodes removed because the quantisation after them clips the same way.</param>
/// <param name="FloatOperators">Operators left in FP32.</param>
public sealed record QuantizationSummary(
    IReadOnlyDictionary<string, int> QuantizedNodes,
    int QuantizedTensors,
    int FoldedActivations,
    IReadOnlyList<string> FloatOperators);

/// <summary>
/// Static INT8 quantisation in QDQ form for ONNX Runtime's CPU execution provider.
/// <list type="bullet">
/// <item>Conv, Gemm and MatMul with constant weights: weights int8, symmetric, per output channel
/// (axis 0 of Conv weights, the N axis of Gemm/MatMul weights); bias int32 with scale
/// input_scale × weight_scale; the activation input uint8 asymmetric per tensor.</item>
/// <item>Activations are uint8 (ONNX Runtime fuses signed activations only on ARM); a Relu or a
/// Clip(0, max) right after a quantised node is removed, its range becoming that node's output
/// range, since quantising with zero point 0 clips the same way.</item>
/// <item>Add of two quantised tensors and average pooling get their own output quantisation
/// (QLinearAdd, QLinearAveragePool); MaxPool, Flatten, Reshape, Transpose, Squeeze and Unsqueeze
/// reuse their input's parameters so ONNX Runtime drops the pair and runs them on uint8.</item>
/// <item>Gemm/MatMul outputs that leave the graph, or feed nothing quantised, stay FP32 (QGemm and
/// MatMulIntegerToFloat write floats), which keeps logits exact to the integer accumulation.</item>
/// </list>
/// </summary>
public static class QdqQuantizer
{
    /// <summary>The ONNX opset that introduced per-axis QuantizeLinear/DequantizeLinear.</summary>
    public const int MinimumOpset = 13;

    private static readonly HashSet<string> s_passThrough = new(StringComparer.Ordinal)
    {
        "MaxPool", "Flatten", "Reshape", "Transpose", "Squeeze", "Unsqueeze",
    };

    private static readonly HashSet<string> s_pools = new(StringComparer.Ordinal) { "AveragePool", "GlobalAveragePool" };

    private static readonly HashSet<string> s_alreadyQuantized = new(StringComparer.Ordinal)
    {
        "QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger", "DynamicQuantizeLinear",
    };

    /// <summary>Quantises <paramref name="model"/>, calibrating on <paramref name="samples"/>.</summary>
    public static (OnnxModel Model, QuantizationSummary Summary, QdqPlan Plan) Quantize(
        OnnxModel model,
        SampleSet samples,
        bool hasBatchDimension,
        CalibrationSettings settings,
        IToolProgress progress,
        CancellationToken cancellationToken = default)
    {
        var plan = Plan(model);
        var ranges = Calibrator.Collect(model, plan.CalibrationTensors, samples, hasBatchDimension, settings, progress, cancellationToken);
        var (quantized, summary) = Apply(model, plan, ranges);
        quantized.Proto.MetadataProps.Add(new StringStringEntryProto
        {
            Key = "effserve.quantization",
            Value = $"static int8 QDQ; weights int8 symmetric per channel; activations uint8 asymmetric per tensor; calibration {settings.Method.ToString().ToLowerInvariant()}"
                + (settings.Method == CalibrationMethod.Percentile ? $" {settings.Percentile.ToString(System.Globalization.CultureInfo.InvariantCulture)}" : "")
                + $" over {samples.Count} samples",
        });
        return (quantized, summary, plan);
    }

    /// <summary>Decides what to quantise.</summary>
    /// <exception cref="ZooToolException">The model cannot be quantised: unsupported operators, too old an opset, already quantised, or nothing to quantise.</exception>
    public static QdqPlan Plan(OnnxModel model)
    {
        var opset = model.OpsetVersion();
        if (opset < MinimumOpset)
        {
            throw new ZooToolException(ZooToolError.InvalidModel, $"the model imports ONNX opset {opset}; INT8 with per-channel weights needs opset {MinimumOpset} or later. Re-export the model at a newer opset.");
        }

        var graph = model.Graph;
        foreach (var node in graph.Node)
        {
            if (!OnnxModel.IsStandard(node))
            {
                throw new ZooToolException(ZooToolError.UnsupportedOperator, $"node {Nodes.Describe(node)} is operator '{node.OpType}' of domain '{node.Domain}'; the quantizer handles standard ONNX operators only.");
            }

            if (Nodes.HasSubgraphs(node))
            {
                throw new ZooToolException(ZooToolError.UnsupportedOperator, $"node {Nodes.Describe(node)} carries subgraphs; the quantizer does not handle control flow ({node.OpType}).");
            }

            if (s_alreadyQuantized.Contains(node.OpType))
            {
                throw new ZooToolException(ZooToolError.InvalidModel, $"the model is already quantized (node {Nodes.Describe(node)}); quantize its FP32 variant instead.");
            }
        }

        var index = new GraphIndex(graph);
        var initializers = model.InitializersByName();
        var types = TypeInference.Infer(model);
        var position = new Dictionary<NodeProto, int>(ReferenceEqualityComparer.Instance);
        for (var i = 0; i < graph.Node.Count; i++)
        {
            position[graph.Node[i]] = i;
        }

        bool IsFloat(string tensor) => types.ElementType(tensor) == ElementTypes.Float;
        bool IsActivation(string tensor) => tensor.Length > 0 && !initializers.ContainsKey(tensor) && IsFloat(tensor);
        TensorProto? FloatInitializer(string tensor) =>
            initializers.TryGetValue(tensor, out var t) && t.DataType == ElementTypes.Float ? t : null;

        var roles = new Dictionary<int, QuantRole>();
        var compute = new Dictionary<int, ComputeNode>();
        var folds = new Dictionary<int, int>();
        var activations = new Dictionary<string, ActivationSource>(StringComparer.Ordinal);
        var folded = new HashSet<int>();

        void NeedOwnRange(string tensor)
        {
            if (!activations.ContainsKey(tensor))
            {
                activations[tensor] = new ActivationSource(tensor, null);
            }
        }

        // The output a quantised node ends in: its Relu/Clip when one follows that quantisation can
        // absorb, else its own.
        string Output(int at, NodeProto node, bool mayFold)
        {
            var output = node.Output[0];
            var consumers = index.ConsumersOf(output);
            if (mayFold && consumers.Count == 1 && !index.Outputs.Contains(output)
                && consumers[0] is var next && IsFoldableActivation(next, initializers, opset)
                && !index.Outputs.Contains(next.Output[0]))
            {
                var at2 = position[next];
                folds[at] = at2;
                folded.Add(at2);
                return next.Output[0];
            }

            return output;
        }

        // Whether a Gemm/MatMul output is worth quantising: something quantised reads it.
        bool FeedsQuantized(string tensor) =>
            !index.Outputs.Contains(tensor) && index.ConsumersOf(tensor).Any(c =>
                c.OpType is "Conv" or "Gemm" or "MatMul" or "Add" || s_pools.Contains(c.OpType) || s_passThrough.Contains(c.OpType));

        foreach (var node in GraphIndex.TopologicalSort(graph))
        {
            var at = position[node];
            if (folded.Contains(at) || node.Output.Count == 0)
            {
                continue;
            }

            switch (node.OpType)
            {
                case "Conv" when node.Input.Count >= 2 && IsActivation(node.Input[0])
                    && FloatInitializer(node.Input[1]) is { Dims.Count: >= 3 } weight
                    && BiasFits(node, 2, weight.Dims[0], initializers):
                {
                    roles[at] = QuantRole.Compute;
                    compute[at] = new ComputeNode(weight.Name, 0, node.Input.Count > 2 && node.Input[2].Length > 0 ? node.Input[2] : null);
                    NeedOwnRange(node.Input[0]);
                    NeedOwnRange(Output(at, node, mayFold: true));
                    break;
                }

                case "Gemm" when node.Input.Count >= 2 && IsActivation(node.Input[0])
                    && FloatInitializer(node.Input[1]) is { Dims.Count: 2 } weight:
                {
                    var transB = Nodes.GetInt(node, "transB", 0) != 0;
                    var axis = transB ? 0 : 1;
                    var hasBias = node.Input.Count > 2 && node.Input[2].Length > 0;
                    if (hasBias && (Nodes.GetFloat(node, "beta", 1f) != 1f || !BiasFits(node, 2, weight.Dims[axis], initializers)))
                    {
                        break;
                    }

                    roles[at] = QuantRole.Compute;
                    compute[at] = new ComputeNode(weight.Name, axis, hasBias ? node.Input[2] : null);
                    NeedOwnRange(node.Input[0]);
                    QuantizeProductOutput(at, node);
                    break;
                }

                case "MatMul" when IsActivation(node.Input[0]) && FloatInitializer(node.Input[1]) is { Dims.Count: 2 } weight:
                    roles[at] = QuantRole.Compute;
                    compute[at] = new ComputeNode(weight.Name, 1, null);
                    NeedOwnRange(node.Input[0]);
                    QuantizeProductOutput(at, node);
                    break;

                case "Add" when node.Input.Count == 2 && node.Input.All(i => activations.ContainsKey(i) && IsActivation(i)):
                    roles[at] = QuantRole.Add;
                    NeedOwnRange(Output(at, node, mayFold: true));
                    break;

                case var op when s_pools.Contains(op) && activations.ContainsKey(node.Input[0]) && IsActivation(node.Input[0]):
                    roles[at] = QuantRole.Pool;
                    NeedOwnRange(node.Output[0]);
                    break;

                case var op when s_passThrough.Contains(op) && activations.ContainsKey(node.Input[0])
                    && node.Output.Skip(1).All(o => o.Length == 0 || index.ConsumersOf(o).Count == 0 && !index.Outputs.Contains(o)):
                    roles[at] = QuantRole.PassThrough;
                    activations[node.Output[0]] = new ActivationSource(null, node.Input[0]);
                    break;
            }
        }

        void QuantizeProductOutput(int at, NodeProto node)
        {
            var output = node.Output[0];
            var consumers = index.ConsumersOf(output);
            var final = consumers.Count == 1 && IsFoldableActivation(consumers[0], initializers, opset) ? consumers[0].Output[0] : output;
            if (FeedsQuantized(final))
            {
                NeedOwnRange(Output(at, node, mayFold: true));
            }
        }

        if (compute.Count == 0)
        {
            throw new ZooToolException(ZooToolError.InvalidModel, "nothing to quantize: the model has no Conv, Gemm or MatMul with constant FP32 weights.");
        }

        return new QdqPlan(roles, compute, folds, activations);
    }

    /// <summary>Rewrites a copy of <paramref name="model"/> as the plan says, with parameters from <paramref name="ranges"/>.</summary>
    public static (OnnxModel Model, QuantizationSummary Summary) Apply(OnnxModel model, QdqPlan plan, IReadOnlyDictionary<string, TensorRange> ranges)
    {
        var result = model.Clone();
        var graph = result.Graph;
        var nodes = graph.Node.ToList();
        var roleOf = new Dictionary<NodeProto, QuantRole>(ReferenceEqualityComparer.Instance);
        foreach (var (at, role) in plan.Roles)
        {
            roleOf[nodes[at]] = role;
        }

        // 1. Fold each absorbed Relu/Clip: its producer writes the activation's output directly.
        foreach (var (producer, activation) in plan.Folds)
        {
            nodes[producer].Output[0] = nodes[activation].Output[0];
        }

        var removed = plan.Folds.Values.Select(i => nodes[i]).ToHashSet(ReferenceEqualityComparer.Instance);
        var live = nodes.Where(n => !removed.Contains(n)).ToList();
        graph.Node.Clear();
        graph.Node.AddRange(live);

        // 2. Parameters of every quantised activation.
        var parameters = new Dictionary<string, ActivationParams>(StringComparer.Ordinal);
        ActivationParams ParamsOf(string tensor)
        {
            if (parameters.TryGetValue(tensor, out var known))
            {
                return known;
            }

            var source = plan.Activations[tensor];
            ActivationParams p;
            if (source.SameAs is { } other)
            {
                p = ParamsOf(other);
            }
            else if (ranges.TryGetValue(source.RangeOf!, out var range))
            {
                p = QuantMath.ForActivation(range.Min, range.Max);
            }
            else
            {
                throw new InvalidOperationException($"no calibrated range for '{source.RangeOf}'.");
            }

            parameters[tensor] = p;
            return p;
        }

        var names = new NameScope(graph);
        var newNodes = new List<NodeProto>();
        var initializers = result.InitializersByName();

        // 3. Weights and biases of the compute nodes.
        var quantizedWeights = new Dictionary<(string, int), (string Codes, string Scales, string ZeroPoints, float[] ScaleValues)>();
        foreach (var (at, info) in plan.Compute)
        {
            var node = nodes[at];
            var key = (info.Weight, info.Axis);
            if (!quantizedWeights.TryGetValue(key, out var weight))
            {
                var source = initializers[info.Weight];
                var (codes, scales) = QuantMath.QuantizeWeights(TensorData.ToFloats(source), source.Dims, info.Axis);
                weight = (names.Unique(info.Weight + "_quantized"), names.Unique(info.Weight + "_scale"), names.Unique(info.Weight + "_zero_point"), scales);
                graph.Initializer.Add(TensorData.FromInt8s(weight.Codes, source.Dims, codes));
                graph.Initializer.Add(TensorData.FromFloats(weight.Scales, [scales.Length], scales));
                graph.Initializer.Add(TensorData.FromInt8s(weight.ZeroPoints, [scales.Length], new sbyte[scales.Length]));
                quantizedWeights[key] = weight;
            }

            var weightOut = names.Unique(info.Weight + "_dequantized");
            newNodes.Add(Nodes.Create("DequantizeLinear", names.Unique(info.Weight + "_DequantizeLinear"), [weight.Codes, weight.Scales, weight.ZeroPoints], [weightOut], Nodes.Int("axis", info.Axis)));
            node.Input[1] = weightOut;

            if (info.Bias is { } biasName)
            {
                var bias = initializers[biasName];
                var inputScale = ParamsOf(node.Input[0]).Scale;
                var (codes, scales) = QuantMath.QuantizeBias(TensorData.ToFloats(bias), inputScale, weight.ScaleValues);
                var codesName = names.Unique(biasName + "_quantized");
                var scaleName = names.Unique(biasName + "_quantized_scale");
                var biasOut = names.Unique(biasName + "_dequantized");
                graph.Initializer.Add(TensorData.FromInt32s(codesName, [codes.Length], codes));
                graph.Initializer.Add(TensorData.FromFloats(scaleName, [scales.Length], scales));
                newNodes.Add(Nodes.Create("DequantizeLinear", names.Unique(biasName + "_DequantizeLinear"), [codesName, scaleName], [biasOut], Nodes.Int("axis", 0)));
                node.Input[2] = biasOut;
            }
        }

        // 4. A QuantizeLinear after every quantised activation, and DequantizeLinear nodes before its
        //    readers: one of its own for each quantised reader (ONNX Runtime fuses per node), one
        //    shared by FP32 readers.
        var index = new GraphIndex(graph);
        foreach (var tensor in plan.Activations.Keys)
        {
            var p = ParamsOf(tensor);
            var scaleName = names.Unique(tensor + "_scale");
            var zeroName = names.Unique(tensor + "_zero_point");
            graph.Initializer.Add(TensorData.Scalar(scaleName, p.Scale));
            graph.Initializer.Add(TensorData.FromUInt8s(zeroName, [], [p.ZeroPoint]));

            var producer = index.ProducerOf(tensor);
            var producedByQuantized = producer is not null && roleOf.ContainsKey(producer);
            var quantizeInput = tensor;
            var isGraphOutput = index.Outputs.Contains(tensor) && producer is not null;
            if (isGraphOutput)
            {
                // The graph output keeps its name and now reads a DequantizeLinear; the producer's
                // own output gets a new name so that it feeds the QuantizeLinear alone.
                quantizeInput = names.Unique(tensor + "_prequantized");
                for (var i = 0; i < producer!.Output.Count; i++)
                {
                    if (producer.Output[i] == tensor)
                    {
                        producer.Output[i] = quantizeInput;
                    }
                }
            }

            var codes = names.Unique(tensor + "_quantized");
            newNodes.Add(Nodes.Create("QuantizeLinear", names.Unique(tensor + "_QuantizeLinear"), [quantizeInput, scaleName, zeroName], [codes]));

            string? shared = isGraphOutput ? tensor : null;
            if (isGraphOutput)
            {
                newNodes.Add(Nodes.Create("DequantizeLinear", names.Unique(tensor + "_DequantizeLinear"), [codes, scaleName, zeroName], [tensor]));
            }

            foreach (var consumer in index.ConsumersOf(tensor))
            {
                string replacement;
                if (roleOf.ContainsKey(consumer))
                {
                    replacement = names.Unique(tensor + "_dequantized");
                    newNodes.Add(Nodes.Create("DequantizeLinear", names.Unique(tensor + "_DequantizeLinear"), [codes, scaleName, zeroName], [replacement]));
                }
                else if (!producedByQuantized && !isGraphOutput)
                {
                    // An FP32 reader of a tensor no integer kernel produced reads the original.
                    continue;
                }
                else
                {
                    if (shared is null)
                    {
                        shared = names.Unique(tensor + "_dequantized");
                        newNodes.Add(Nodes.Create("DequantizeLinear", names.Unique(tensor + "_DequantizeLinear"), [codes, scaleName, zeroName], [shared]));
                    }

                    replacement = shared;
                }

                for (var i = 0; i < consumer.Input.Count; i++)
                {
                    if (consumer.Input[i] == tensor)
                    {
                        consumer.Input[i] = replacement;
                    }
                }
            }
        }

        graph.Node.AddRange(newNodes);
        var ordered = GraphIndex.TopologicalSort(graph);
        graph.Node.Clear();
        graph.Node.AddRange(ordered);
        RemoveUnused(graph);

        var quantizedNodes = plan.Roles.Keys.Select(i => nodes[i].OpType)
            .GroupBy(op => op, StringComparer.Ordinal)
            .OrderBy(g => g.Key, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);
        var floatOps = live.Where(n => !roleOf.ContainsKey(n)).Select(n => n.OpType).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        return (result, new QuantizationSummary(quantizedNodes, plan.Activations.Count, plan.Folds.Count, floatOps));
    }

    /// <summary>Relu, or Clip with a constant minimum of exactly 0 (ReLU6 and the like).</summary>
    private static bool IsFoldableActivation(NodeProto node, Dictionary<string, TensorProto> initializers, long opset)
    {
        if (node.OpType == "Relu")
        {
            return true;
        }

        if (node.OpType != "Clip")
        {
            return false;
        }

        if (opset < 11)
        {
            return Nodes.GetFloat(node, "min", float.NegativeInfinity) == 0f;
        }

        if (node.Input.Count < 2 || !initializers.TryGetValue(node.Input[1], out var min) || min.DataType != ElementTypes.Float)
        {
            return false;
        }

        var values = TensorData.ToFloats(min);
        if (values.Length != 1 || values[0] != 0f)
        {
            return false;
        }

        // The maximum, when given, must be a constant too (it is folded into the calibrated range).
        return node.Input.Count < 3 || node.Input[2].Length == 0 || initializers.ContainsKey(node.Input[2]);
    }

    /// <summary>Whether input <paramref name="slot"/> is absent, or a 1-D FP32 initializer with one value per channel.</summary>
    private static bool BiasFits(NodeProto node, int slot, long channels, Dictionary<string, TensorProto> initializers)
    {
        if (node.Input.Count <= slot || node.Input[slot].Length == 0)
        {
            return true;
        }

        return initializers.TryGetValue(node.Input[slot], out var bias)
            && bias.DataType == ElementTypes.Float && bias.Dims.Count == 1 && bias.Dims[0] == channels;
    }

    /// <summary>Drops initializers nothing reads any more, and type entries of tensors that are gone.</summary>
    internal static void RemoveUnused(GraphProto graph)
    {
        var read = graph.Node.SelectMany(GraphIndex.ReadsOf).Concat(graph.Output.Select(o => o.Name)).ToHashSet(StringComparer.Ordinal);
        var keep = graph.Initializer.Where(t => read.Contains(t.Name)).ToList();
        graph.Initializer.Clear();
        graph.Initializer.AddRange(keep);

        var inputs = graph.Input.Where(i => read.Contains(i.Name) || keep.All(t => t.Name != i.Name)).ToList();
        graph.Input.Clear();
        graph.Input.AddRange(inputs);

        var produced = graph.Node.SelectMany(n => n.Output).ToHashSet(StringComparer.Ordinal);
        var values = graph.ValueInfo.Where(v => produced.Contains(v.Name)).ToList();
        graph.ValueInfo.Clear();
        graph.ValueInfo.AddRange(values);
    }
}
