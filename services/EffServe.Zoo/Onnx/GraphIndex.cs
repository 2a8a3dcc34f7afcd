using EffServe.Zoo.OnnxFormat;

namespace EffServe.Zoo.Onnx;

/// <summary>
/// Who produces and who reads each tensor of a graph, taken at one moment: rebuild it after
/// editing the graph.
/// </summary>
public sealed class GraphIndex
{
    private readonly Dictionary<string, NodeProto> _producers = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<NodeProto>> _consumers = new(StringComparer.Ordinal);

    public GraphIndex(GraphProto graph)
    {
        Graph = graph;
        Initializers = graph.Initializer.Select(t => t.Name).ToHashSet(StringComparer.Ordinal);
        Inputs = graph.Input.Select(i => i.Name).Where(n => !Initializers.Contains(n)).ToHashSet(StringComparer.Ordinal);
        Outputs = graph.Output.Select(o => o.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var node in graph.Node)
        {
            foreach (var output in node.Output.Where(o => o.Length > 0))
            {
                _producers[output] = node;
            }

            foreach (var input in ReadsOf(node).Distinct(StringComparer.Ordinal))
            {
                if (!_consumers.TryGetValue(input, out var list))
                {
                    _consumers[input] = list = [];
                }

                list.Add(node);
            }
        }
    }

    public GraphProto Graph { get; }

    public IReadOnlySet<string> Initializers { get; }

    /// <summary>Graph inputs a caller feeds (initializers listed as inputs excluded).</summary>
    public IReadOnlySet<string> Inputs { get; }

    public IReadOnlySet<string> Outputs { get; }

    public NodeProto? ProducerOf(string tensor) => _producers.GetValueOrDefault(tensor);

    /// <summary>The nodes that read <paramref name="tensor"/>, each once, in graph order.</summary>
    public IReadOnlyList<NodeProto> ConsumersOf(string tensor) => _consumers.TryGetValue(tensor, out var list) ? list : [];

    /// <summary>Every tensor name the graph knows: inputs, initializers and node outputs.</summary>
    public IEnumerable<string> Tensors => Inputs.Concat(Initializers).Concat(_producers.Keys);

    /// <summary>
    /// The tensors a node reads: its inputs, and names its subgraphs (If, Loop, Scan bodies) take
    /// from the enclosing graph.
    /// </summary>
    public static IEnumerable<string> ReadsOf(NodeProto node)
    {
        foreach (var input in node.Input)
        {
            if (input.Length > 0)
            {
                yield return input;
            }
        }

        foreach (var attribute in node.Attribute)
        {
            foreach (var sub in attribute.Graphs.Prepend(attribute.G).OfType<GraphProto>())
            {
                foreach (var outer in OuterReads(sub))
                {
                    yield return outer;
                }
            }
        }
    }

    /// <summary>Orders the nodes so that each follows every node it reads from.</summary>
    /// <exception cref="ZooToolException">The graph has a cycle or reads a tensor nothing defines (InvalidModel).</exception>
    public static List<NodeProto> TopologicalSort(GraphProto graph)
    {
        var index = new GraphIndex(graph);
        var available = index.Inputs.Concat(index.Initializers).ToHashSet(StringComparer.Ordinal);
        var waiting = new Dictionary<NodeProto, int>(ReferenceEqualityComparer.Instance);
        var ready = new Queue<NodeProto>();
        foreach (var node in graph.Node)
        {
            var missing = ReadsOf(node).Distinct(StringComparer.Ordinal).Count(n => !available.Contains(n) && index._producers.ContainsKey(n));
            waiting[node] = missing;
            if (missing == 0)
            {
                ready.Enqueue(node);
            }
        }

        var order = new List<NodeProto>(graph.Node.Count);
        while (ready.Count > 0)
        {
            var node = ready.Dequeue();
            order.Add(node);
            foreach (var output in node.Output.Where(o => o.Length > 0))
            {
                if (!available.Add(output))
                {
                    continue;
                }

                foreach (var consumer in index.ConsumersOf(output))
                {
                    if (--waiting[consumer] == 0)
                    {
                        ready.Enqueue(consumer);
                    }
                }
            }
        }

        if (order.Count != graph.Node.Count)
        {
            var stuck = graph.Node.First(n => !order.Contains(n));
            throw new ZooToolException(ZooToolError.InvalidModel, $"the graph has a cycle through node '{stuck.Name}' ({stuck.OpType}).");
        }

        return order;
    }

    private static IEnumerable<string> OuterReads(GraphProto sub)
    {
        var defined = sub.Input.Select(i => i.Name)
            .Concat(sub.Initializer.Select(t => t.Name))
            .Concat(sub.Node.SelectMany(n => n.Output))
            .ToHashSet(StringComparer.Ordinal);
        return sub.Node.SelectMany(ReadsOf).Where(n => !defined.Contains(n));
    }
}

/// <summary>Hands out tensor and node names that the graph does not use yet.</summary>
public sealed class NameScope
{
    private readonly HashSet<string> _used = new(StringComparer.Ordinal);

    public NameScope(GraphProto graph)
    {
        foreach (var name in graph.Input.Select(i => i.Name)
            .Concat(graph.Output.Select(o => o.Name))
            .Concat(graph.Initializer.Select(t => t.Name))
            .Concat(graph.ValueInfo.Select(v => v.Name))
            .Concat(graph.Node.SelectMany(n => n.Input.Concat(n.Output).Append(n.Name))))
        {
            _used.Add(name);
        }
    }

    /// <summary><paramref name="wanted"/> when it is free, else <paramref name="wanted"/> with the first free numeric suffix.</summary>
    public string Unique(string wanted)
    {
        if (_used.Add(wanted))
        {
            return wanted;
        }

        for (var i = 1; ; i++)
        {
            var candidate = $"{wanted}_{i}";
            if (_used.Add(candidate))
            {
                return candidate;
            }
        }
    }
}
