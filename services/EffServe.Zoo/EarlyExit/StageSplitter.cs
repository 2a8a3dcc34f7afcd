using EffServe.Zoo.Onnx;
using EffServe.Zoo.OnnxFormat;

namespace EffServe.Zoo.EarlyExit;

/// <summary>A tensor to cut the model at, and the name it takes in the stage models.</summary>
/// <param name="Tensor">The tensor's name in the model.</param>
/// <param name="Name">Its name as the output of one stage and the input of the next.</param>
public sealed record StageCut(string Tensor, string Name)
{
    /// <summary>Parses "tensor" or "tensor=name".</summary>
    public static StageCut Parse(string text)
    {
        var at = text.LastIndexOf('=');
        return at <= 0 ? new StageCut(text.Trim(), text.Trim()) : new StageCut(text[..at].Trim(), text[(at + 1)..].Trim());
    }
}

/// <summary>One stage: a standalone model, its inputs and outputs, and which output is its exit.</summary>
public sealed record StageModel(OnnxModel Model, string Exit, IReadOnlyList<string> Inputs, IReadOnlyList<string> Outputs, int Nodes);

/// <summary>
/// Cuts a model with several exit outputs into a chain of stage models. Stage 1 reads the model's
/// inputs and writes exit 1 and feature tensor 1; stage k reads feature tensor k − 1 and writes
/// exit k and feature tensor k; the last stage writes the last exit. Each stage holds only the
/// nodes and initializers its outputs need, and is a valid model on its own.
/// </summary>
public static class StageSplitter
{
    /// <exception cref="ZooToolException">
    /// The model has no exit outputs (InvalidModel); a name is not in the model (UnknownName); the
    /// counts do not match or a cut does not separate the model (InvalidArgument); it has control
    /// flow (UnsupportedOperator).
    /// </exception>
    public static IReadOnlyList<StageModel> Split(OnnxModel model, IReadOnlyList<StageCut> cuts, IReadOnlyList<string> exits)
    {
        var graph = model.Graph;
        var outputs = graph.Output.Select(o => o.Name).ToList();
        if (outputs.Count < 2)
        {
            throw new ZooToolException(ZooToolError.InvalidModel, $"the model has no exit outputs: its only output is '{outputs.FirstOrDefault()}'. Early exit needs one output per stage (exit logits), for example exit1_logits, exit2_logits, logits.");
        }

        if (cuts.Count == 0)
        {
            throw new ZooToolException(ZooToolError.InvalidArgument, "give at least one tensor to cut at (--cut); stages are the parts between cuts.");
        }

        if (exits.Count != cuts.Count + 1)
        {
            throw new ZooToolException(ZooToolError.InvalidArgument, $"{cuts.Count} cut{(cuts.Count == 1 ? "" : "s")} make{(cuts.Count == 1 ? "s" : "")} {cuts.Count + 1} stages, so {cuts.Count + 1} exits are needed; {exits.Count} given ({string.Join(", ", exits)}).");
        }

        foreach (var exit in exits.Where(e => !outputs.Contains(e)))
        {
            throw new ZooToolException(ZooToolError.UnknownName, $"exit '{exit}' is not an output of the model (outputs: {string.Join(", ", outputs)}).");
        }

        if (exits.Distinct(StringComparer.Ordinal).Count() != exits.Count)
        {
            throw new ZooToolException(ZooToolError.InvalidArgument, $"the exits name an output twice ({string.Join(", ", exits)}).");
        }

        foreach (var node in graph.Node.Where(Nodes.HasSubgraphs))
        {
            throw new ZooToolException(ZooToolError.UnsupportedOperator, $"node {Nodes.Describe(node)} carries subgraphs; stage splitting does not handle control flow ({node.OpType}).");
        }

        var index = new GraphIndex(graph);
        var tensors = index.Tensors.ToHashSet(StringComparer.Ordinal);
        foreach (var cut in cuts)
        {
            if (index.ProducerOf(cut.Tensor) is null)
            {
                throw new ZooToolException(ZooToolError.UnknownName, $"cut '{cut.Tensor}' is not a tensor computed by the model{Suggest(cut.Tensor, index)}.");
            }

            if (!Manifest.ZooNames.IsValid(cut.Name) && cut.Name != cut.Tensor)
            {
                throw new ZooToolException(ZooToolError.InvalidArgument, $"'{cut.Name}' is not a usable tensor name: use letters, digits, '-', '_' and '.'.");
            }

            if (cut.Name != cut.Tensor && tensors.Contains(cut.Name))
            {
                throw new ZooToolException(ZooToolError.InvalidArgument, $"cut '{cut.Tensor}' cannot be renamed '{cut.Name}': the model already has a tensor of that name.");
            }
        }

        if (cuts.Select(c => c.Name).Distinct(StringComparer.Ordinal).Count() != cuts.Count)
        {
            throw new ZooToolException(ZooToolError.InvalidArgument, "two cuts have the same name.");
        }

        var types = TypeInference.Infer(model, cuts.Select(c => c.Tensor));
        var rename = cuts.ToDictionary(c => c.Tensor, c => c.Name, StringComparer.Ordinal);
        var order = GraphIndex.TopologicalSort(graph);
        var stages = new List<StageModel>();
        for (var k = 0; k < exits.Count; k++)
        {
            var inputs = k == 0 ? model.FedInputs().Select(i => i.Name).ToList() : [cuts[k - 1].Tensor];
            var stageOutputs = k < cuts.Count ? new List<string> { exits[k], cuts[k].Tensor } : [exits[k]];
            var needed = Slice(index, inputs, stageOutputs, k, cuts);
            var stage = BuildStage(model, order, needed, inputs, stageOutputs, types, rename, k + 1);
            stages.Add(new StageModel(stage, exits[k], inputs.Select(i => rename.GetValueOrDefault(i, i)).ToList(), stageOutputs.Select(o => rename.GetValueOrDefault(o, o)).ToList(), stage.Graph.Node.Count));
        }

        return stages;
    }

    /// <summary>The nodes a stage needs: everything its outputs depend on back to its inputs.</summary>
    private static HashSet<NodeProto> Slice(GraphIndex index, IReadOnlyList<string> inputs, IReadOnlyList<string> outputs, int stage, IReadOnlyList<StageCut> cuts)
    {
        var stop = inputs.ToHashSet(StringComparer.Ordinal);
        var nodes = new HashSet<NodeProto>(ReferenceEqualityComparer.Instance);
        var pending = new Stack<string>(outputs);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        while (pending.Count > 0)
        {
            var tensor = pending.Pop();
            if (!seen.Add(tensor) || stop.Contains(tensor) || index.Initializers.Contains(tensor))
            {
                continue;
            }

            var producer = index.ProducerOf(tensor);
            if (producer is null)
            {
                var from = stage == 0 ? "the model's inputs" : $"cut '{cuts[stage - 1].Tensor}'";
                throw new ZooToolException(ZooToolError.InvalidArgument, $"stage {stage + 1} needs '{tensor}', which is not computed from {from}: the cuts do not separate the model into a chain (a skip connection may cross a cut; cut where every path passes).");
            }

            if (nodes.Add(producer))
            {
                foreach (var input in GraphIndex.ReadsOf(producer))
                {
                    pending.Push(input);
                }
            }
        }

        return nodes;
    }

    private static OnnxModel BuildStage(
        OnnxModel model,
        IReadOnlyList<NodeProto> order,
        HashSet<NodeProto> needed,
        IReadOnlyList<string> inputs,
        IReadOnlyList<string> outputs,
        Dictionary<string, ValueInfoProto> types,
        Dictionary<string, string> rename,
        int number)
    {
        var source = model.Graph;
        var graph = new GraphProto { Name = $"{(source.Name.Length == 0 ? "model" : source.Name)}_stage{number}", DocString = source.DocString };
        foreach (var node in order.Where(needed.Contains))
        {
            var copy = node.Clone();
            Rename(copy.Input, rename);
            Rename(copy.Output, rename);
            graph.Node.Add(copy);
        }

        var read = graph.Node.SelectMany(GraphIndex.ReadsOf).ToHashSet(StringComparer.Ordinal);
        graph.Initializer.AddRange(source.Initializer.Where(t => read.Contains(t.Name)).Select(t => t.Clone()));
        graph.SparseInitializer.AddRange(source.SparseInitializer.Where(t => read.Contains(t.Values?.Name ?? "")).Select(t => t.Clone()));

        foreach (var input in inputs)
        {
            graph.Input.Add(TypedValue(input, source.Input.FirstOrDefault(i => i.Name == input), types, rename));
        }

        foreach (var output in outputs)
        {
            graph.Output.Add(TypedValue(output, source.Output.FirstOrDefault(o => o.Name == output), types, rename));
        }

        var produced = graph.Node.SelectMany(n => n.Output).ToHashSet(StringComparer.Ordinal);
        foreach (var value in source.ValueInfo.Where(v => produced.Contains(rename.GetValueOrDefault(v.Name, v.Name))))
        {
            var copy = value.Clone();
            copy.Name = rename.GetValueOrDefault(copy.Name, copy.Name);
            graph.ValueInfo.Add(copy);
        }

        var proto = new ModelProto
        {
            IrVersion = model.Proto.IrVersion,
            ProducerName = model.Proto.ProducerName,
            ProducerVersion = model.Proto.ProducerVersion,
            Domain = model.Proto.Domain,
            DocString = $"Stage {number} of an early-exit chain cut by effserve zoo early-exit.",
            Graph = graph,
        };
        if (model.Proto.HasModelVersion)
        {
            proto.ModelVersion = model.Proto.ModelVersion;
        }

        proto.OpsetImport.AddRange(model.Proto.OpsetImport.Select(o => o.Clone()));
        proto.Functions.AddRange(model.Proto.Functions.Select(f => f.Clone()));
        proto.MetadataProps.AddRange(model.Proto.MetadataProps.Select(p => p.Clone()));
        return OnnxModel.FromProto(proto);
    }

    private static ValueInfoProto TypedValue(string name, ValueInfoProto? declared, Dictionary<string, ValueInfoProto> types, Dictionary<string, string> rename)
    {
        var value = (declared ?? types.GetValueOrDefault(name))?.Clone()
            ?? throw new ZooToolException(ZooToolError.InvalidModel, $"the type of '{name}' is unknown (ONNX Runtime could not infer it).");
        value.Name = rename.GetValueOrDefault(name, name);
        return value;
    }

    private static void Rename(Google.Protobuf.Collections.RepeatedField<string> names, Dictionary<string, string> rename)
    {
        for (var i = 0; i < names.Count; i++)
        {
            if (rename.TryGetValue(names[i], out var renamed))
            {
                names[i] = renamed;
            }
        }
    }

    /// <summary>A hint listing tensors whose names contain the one asked for, or the outputs of activation and pooling nodes.</summary>
    private static string Suggest(string wanted, GraphIndex index)
    {
        var produced = index.Graph.Node.SelectMany(n => n.Output.Where(o => o.Length > 0).Select(o => (Output: o, n.OpType))).ToList();
        var close = produced.Where(p => p.Output.Contains(wanted, StringComparison.OrdinalIgnoreCase)).Select(p => p.Output).ToList();
        if (close.Count == 0)
        {
            close = produced.Where(p => p.OpType is "Relu" or "Clip" or "MaxPool" or "Add").Select(p => p.Output).ToList();
        }

        return close.Count == 0 ? "" : $" (candidates: {string.Join(", ", close.Take(12))}{(close.Count > 12 ? ", ..." : "")}; rename one with tensor=name)";
    }
}
