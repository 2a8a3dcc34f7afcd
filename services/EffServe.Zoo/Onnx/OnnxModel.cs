using EffServe.Core.Tensors;
using EffServe.Zoo.OnnxFormat;
using Google.Protobuf;

namespace EffServe.Zoo.Onnx;

/// <summary>
/// An ONNX model held as its protobuf messages: load and save, initializers as arrays, the graph's
/// inputs and outputs as <see cref="TensorSpec"/>s, and its nodes in dependency order. Fields this
/// project's schema does not name are kept as unknown fields, so a model read and written back
/// means the same to ONNX Runtime.
/// </summary>
public sealed class OnnxModel
{
    private OnnxModel(ModelProto proto)
    {
        Proto = proto;
    }

    public ModelProto Proto { get; }

    public GraphProto Graph => Proto.Graph;

    /// <summary>Whether <see cref="Load"/> read tensors from external data files into the model.</summary>
    public bool HadExternalData { get; private set; }

    /// <summary>Reads a model file. Tensors stored in external files beside it are read into the model.</summary>
    /// <exception cref="ZooToolException">The file is missing (NotFound) or is not an ONNX model (InvalidModel).</exception>
    public static OnnxModel Load(string path)
    {
        var full = Path.GetFullPath(path);
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(full);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new ZooToolException(ZooToolError.NotFound, $"{full} does not exist.", e);
        }

        var model = Parse(bytes, full);
        model.LoadExternalData(Path.GetDirectoryName(full)!, full);
        return model;
    }

    /// <summary>Parses a serialised model; <paramref name="source"/> names it in messages.</summary>
    /// <exception cref="ZooToolException">The bytes are not an ONNX model (InvalidModel).</exception>
    public static OnnxModel Parse(byte[] bytes, string source)
    {
        ModelProto proto;
        try
        {
            proto = ModelProto.Parser.ParseFrom(bytes);
        }
        catch (InvalidProtocolBufferException e)
        {
            throw NotOnnx(source, e.Message, e);
        }

        if (proto.Graph is null || proto.IrVersion <= 0 || proto.OpsetImport.Count == 0)
        {
            var missing = proto.Graph is null ? "graph" : proto.IrVersion <= 0 ? "ir_version" : "opset_import";
            throw NotOnnx(source, $"it has no {missing}", null);
        }

        return new OnnxModel(proto);
    }

    /// <summary>Wraps a model built in code.</summary>
    public static OnnxModel FromProto(ModelProto proto) => new(proto);

    public byte[] ToBytes() => Proto.ToByteArray();

    /// <summary>Writes the model to <paramref name="path"/>, creating its folder.</summary>
    public void Save(string path)
    {
        var full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        using var stream = File.Create(full);
        Proto.WriteTo(stream);
    }

    public OnnxModel Clone() => new(Proto.Clone());

    /// <summary>The version of the operator set imported for <paramref name="domain"/> ("" is ai.onnx); 0 when not imported.</summary>
    public long OpsetVersion(string domain = "")
    {
        foreach (var opset in Proto.OpsetImport)
        {
            if (IsSameDomain(opset.Domain, domain))
            {
                return opset.Version;
            }
        }

        return 0;
    }

    /// <summary>Whether two domain names mean the same operator set ("" and "ai.onnx" do).</summary>
    public static bool IsSameDomain(string a, string b) => Normalise(a) == Normalise(b);

    /// <summary>Whether <paramref name="node"/> is a standard ONNX operator.</summary>
    public static bool IsStandard(NodeProto node) => Normalise(node.Domain).Length == 0;

    public Dictionary<string, TensorProto> InitializersByName()
    {
        var map = new Dictionary<string, TensorProto>(StringComparer.Ordinal);
        foreach (var t in Graph.Initializer)
        {
            map[t.Name] = t;
        }

        return map;
    }

    public TensorProto? FindInitializer(string name) => Graph.Initializer.FirstOrDefault(t => t.Name == name);

    /// <summary>The graph inputs a caller feeds: old models also list initializers as inputs.</summary>
    public IReadOnlyList<ValueInfoProto> FedInputs()
    {
        var initializers = Graph.Initializer.Select(t => t.Name).ToHashSet(StringComparer.Ordinal);
        return Graph.Input.Where(i => !initializers.Contains(i.Name)).ToList();
    }

    /// <summary>The inputs a caller feeds, as specs; symbolic or unknown dimensions are -1.</summary>
    /// <exception cref="ZooToolException">An input is not a tensor of a protocol datatype (InvalidModel).</exception>
    public IReadOnlyList<TensorSpec> InputSpecs() => FedInputs().Select(ToSpec).ToList();

    /// <summary>The graph's outputs, as specs; symbolic or unknown dimensions are -1.</summary>
    public IReadOnlyList<TensorSpec> OutputSpecs() => Graph.Output.Select(ToSpec).ToList();

    /// <summary>The graph's nodes ordered so that every node comes after the nodes it reads from.</summary>
    public IReadOnlyList<NodeProto> TopologicalOrder() => GraphIndex.TopologicalSort(Graph);

    /// <summary>A value's type as a spec; -1 for symbolic or unknown dimensions.</summary>
    public static TensorSpec ToSpec(ValueInfoProto value)
    {
        if (value.Type?.TensorType is not { } tensor)
        {
            throw new ZooToolException(ZooToolError.InvalidModel, $"'{value.Name}' is not a tensor (or has no type); EffServe serves tensors only.");
        }

        if (!ElementTypes.TryToDataType(tensor.ElemType, out var type))
        {
            throw new ZooToolException(ZooToolError.InvalidModel, $"'{value.Name}' holds {ElementTypes.Name(tensor.ElemType)}, which the inference protocol cannot carry.");
        }

        if (tensor.Shape is null)
        {
            throw new ZooToolException(ZooToolError.InvalidModel, $"'{value.Name}' has no shape (not even a rank); re-export the model with shapes on its inputs and outputs.");
        }

        var dims = tensor.Shape.Dim
            .Select(d => d.ValueCase == TensorShapeProto.Types.Dimension.ValueOneofCase.DimValue && d.DimValue > 0 ? d.DimValue : -1L)
            .ToArray();
        return new TensorSpec(value.Name, type, dims);
    }

    private void LoadExternalData(string directory, string source)
    {
        foreach (var tensor in AllTensors(Graph))
        {
            if (tensor.DataLocation != TensorProto.Types.DataLocation.External)
            {
                continue;
            }

            var entries = tensor.ExternalData.ToDictionary(e => e.Key, e => e.Value, StringComparer.Ordinal);
            if (!entries.TryGetValue("location", out var location) || Path.IsPathRooted(location))
            {
                throw NotOnnx(source, $"tensor '{tensor.Name}' names no relative external data location", null);
            }

            var file = Path.GetFullPath(Path.Combine(directory, location));
            var offset = entries.TryGetValue("offset", out var o) ? long.Parse(o, System.Globalization.CultureInfo.InvariantCulture) : 0;
            var expected = TensorData.ElementCount(tensor) * ElementTypes.Size(tensor.DataType);
            var length = entries.TryGetValue("length", out var l) ? long.Parse(l, System.Globalization.CultureInfo.InvariantCulture) : expected;
            try
            {
                using var stream = File.OpenRead(file);
                stream.Seek(offset, SeekOrigin.Begin);
                var data = new byte[checked((int)length)];
                stream.ReadExactly(data);
                tensor.RawData = ByteString.CopyFrom(data);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                throw new ZooToolException(ZooToolError.InvalidModel, $"{source}: tensor '{tensor.Name}' keeps its data in {file}, which cannot be read: {e.Message}", e);
            }

            tensor.ExternalData.Clear();
            tensor.ClearDataLocation();
            HadExternalData = true;
        }
    }

    /// <summary>Every tensor a graph holds: initializers and constant attributes, in subgraphs too.</summary>
    internal static IEnumerable<TensorProto> AllTensors(GraphProto graph)
    {
        foreach (var t in graph.Initializer)
        {
            yield return t;
        }

        foreach (var node in graph.Node)
        {
            foreach (var attribute in node.Attribute)
            {
                if (attribute.T is { } t)
                {
                    yield return t;
                }

                foreach (var each in attribute.Tensors)
                {
                    yield return each;
                }

                foreach (var sub in attribute.Graphs.Prepend(attribute.G).OfType<GraphProto>())
                {
                    foreach (var inner in AllTensors(sub))
                    {
                        yield return inner;
                    }
                }
            }
        }
    }

    private static string Normalise(string domain) => domain == "ai.onnx" ? "" : domain;

    private static ZooToolException NotOnnx(string source, string why, Exception? inner)
    {
        var message = $"{source} is not an ONNX model ({why}).";
        return inner is null ? new ZooToolException(ZooToolError.InvalidModel, message) : new ZooToolException(ZooToolError.InvalidModel, message, inner);
    }
}
