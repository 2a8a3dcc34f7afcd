using System.Globalization;
using System.Text;
using Google.Protobuf;

namespace EffServe.Inference.Tests.Support;

/// <summary>
/// Writes a tiny ONNX model (IR 8, opset 17) of Identity nodes, <c>in_&lt;suffix&gt;</c> →
/// <c>out_&lt;suffix&gt;</c> with shape [batch, width] per element type, and the zoo manifest that
/// serves it. The protobuf is written field by field, so the tests need no ONNX tooling.
/// </summary>
internal static class IdentityOnnx
{
    // onnx.proto field numbers.
    private const int ModelIrVersion = 1;
    private const int ModelProducerName = 2;
    private const int ModelGraph = 7;
    private const int ModelOpsetImport = 8;
    private const int OpsetVersion = 2;
    private const int GraphNode = 1;
    private const int GraphName = 2;
    private const int GraphInput = 11;
    private const int GraphOutput = 12;
    private const int NodeInput = 1;
    private const int NodeOutput = 2;
    private const int NodeName = 3;
    private const int NodeOpType = 4;
    private const int ValueInfoName = 1;
    private const int ValueInfoType = 2;
    private const int TypeTensor = 1;
    private const int TensorElemType = 1;
    private const int TensorShape = 2;
    private const int ShapeDim = 1;
    private const int DimValue = 1;
    private const int DimParam = 2;

    public static byte[] Build(string graphName, IReadOnlyList<(string Suffix, int ElementType)> tensors, int width)
    {
        var graph = Message(g =>
        {
            foreach (var (suffix, _) in tensors)
            {
                g.Embedded(GraphNode, Message(n =>
                {
                    n.Text(NodeInput, "in_" + suffix);
                    n.Text(NodeOutput, "out_" + suffix);
                    n.Text(NodeName, "identity_" + suffix);
                    n.Text(NodeOpType, "Identity");
                }));
            }

            g.Text(GraphName, graphName);
            foreach (var (suffix, type) in tensors)
            {
                g.Embedded(GraphInput, ValueInfo("in_" + suffix, type, width));
            }

            foreach (var (suffix, type) in tensors)
            {
                g.Embedded(GraphOutput, ValueInfo("out_" + suffix, type, width));
            }
        });

        return Message(m =>
        {
            m.Integer(ModelIrVersion, 8);
            m.Text(ModelProducerName, "effserve-inference-tests");
            m.Embedded(ModelGraph, graph);
            m.Embedded(ModelOpsetImport, Message(o => o.Integer(OpsetVersion, 17)));
        });
    }

    /// <summary>The model.yaml of such a model, batch dimension first (max_batch_size 8).</summary>
    public static string Manifest(string name, IReadOnlyList<(string Suffix, string Datatype)> tensors, int width, string file)
    {
        var yaml = new StringBuilder();
        yaml.AppendLine(CultureInfo.InvariantCulture, $"name: {name}");
        yaml.AppendLine("task: identity");
        yaml.AppendLine("max_batch_size: 8");
        foreach (var (key, prefix) in new[] { ("inputs", "in_"), ("outputs", "out_") })
        {
            yaml.AppendLine(CultureInfo.InvariantCulture, $"{key}:");
            foreach (var (suffix, datatype) in tensors)
            {
                yaml.AppendLine(CultureInfo.InvariantCulture, $"  - {{ name: {prefix}{suffix}, datatype: {datatype}, shape: [-1, {width}] }}");
            }
        }

        yaml.AppendLine("variants:");
        yaml.AppendLine("  - name: identity");
        yaml.AppendLine("    kind: fp32");
        yaml.AppendLine(CultureInfo.InvariantCulture, $"    file: {file}");
        return yaml.ToString();
    }

    private static byte[] ValueInfo(string name, int elementType, int width) => Message(v =>
    {
        v.Text(ValueInfoName, name);
        v.Embedded(ValueInfoType, Message(t => t.Embedded(TypeTensor, Message(tensor =>
        {
            tensor.Integer(TensorElemType, elementType);
            tensor.Embedded(TensorShape, Message(shape =>
            {
                shape.Embedded(ShapeDim, Message(d => d.Text(DimParam, "batch")));
                shape.Embedded(ShapeDim, Message(d => d.Integer(DimValue, width)));
            }));
        }))));
    });

    private static byte[] Message(Action<ProtoWriter> write)
    {
        using var writer = new ProtoWriter();
        write(writer);
        return writer.ToArray();
    }

    private sealed class ProtoWriter : IDisposable
    {
        private readonly MemoryStream _buffer = new();
        private readonly CodedOutputStream _output;

        public ProtoWriter()
        {
            _output = new CodedOutputStream(_buffer, leaveOpen: true);
        }

        public void Text(int field, string value)
        {
            _output.WriteTag(field, WireFormat.WireType.LengthDelimited);
            _output.WriteString(value);
        }

        public void Integer(int field, long value)
        {
            _output.WriteTag(field, WireFormat.WireType.Varint);
            _output.WriteInt64(value);
        }

        public void Embedded(int field, byte[] message)
        {
            _output.WriteTag(field, WireFormat.WireType.LengthDelimited);
            _output.WriteBytes(ByteString.CopyFrom(message));
        }

        public byte[] ToArray()
        {
            _output.Flush();
            return _buffer.ToArray();
        }

        public void Dispose()
        {
            _output.Dispose();
            _buffer.Dispose();
        }
    }
}
