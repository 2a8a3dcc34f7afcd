using EffServe.Zoo.OnnxFormat;
using Google.Protobuf;

namespace EffServe.Zoo.Onnx;

/// <summary>Builds nodes and attributes, and reads attributes with their ONNX defaults.</summary>
public static class Nodes
{
    public static NodeProto Create(string opType, string name, IEnumerable<string> inputs, IEnumerable<string> outputs, params AttributeProto[] attributes)
    {
        var node = new NodeProto { OpType = opType, Name = name };
        node.Input.AddRange(inputs);
        node.Output.AddRange(outputs);
        node.Attribute.AddRange(attributes);
        return node;
    }

    public static AttributeProto Int(string name, long value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };

    public static AttributeProto Float(string name, float value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = value };

    public static AttributeProto Ints(string name, params long[] values)
    {
        var attribute = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        attribute.Ints.AddRange(values);
        return attribute;
    }

    public static AttributeProto String(string name, string value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.String, S = ByteString.CopyFromUtf8(value) };

    public static AttributeProto Tensor(string name, TensorProto value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Tensor, T = value };

    public static AttributeProto? Find(NodeProto node, string name) => node.Attribute.FirstOrDefault(a => a.Name == name);

    public static long GetInt(NodeProto node, string name, long fallback) => Find(node, name) is { HasI: true } a ? a.I : fallback;

    public static float GetFloat(NodeProto node, string name, float fallback) => Find(node, name) is { HasF: true } a ? a.F : fallback;

    public static IReadOnlyList<long>? GetInts(NodeProto node, string name) => Find(node, name) is { } a ? a.Ints : null;

    /// <summary>Whether a node carries subgraphs (If, Loop, Scan ...).</summary>
    public static bool HasSubgraphs(NodeProto node) => node.Attribute.Any(a => a.G is not null || a.Graphs.Count > 0);

    /// <summary>How a node is named in messages: its name and operator, or its first output when it has no name.</summary>
    public static string Describe(NodeProto node) =>
        node.Name.Length > 0 ? $"'{node.Name}' ({node.OpType})" : $"{node.OpType} producing '{node.Output.FirstOrDefault()}'";
}
