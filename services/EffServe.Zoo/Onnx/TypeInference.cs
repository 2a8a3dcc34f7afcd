using EffServe.Zoo.OnnxFormat;
using Microsoft.ML.OnnxRuntime;

namespace EffServe.Zoo.Onnx;

/// <summary>
/// Element types and shapes of a graph's intermediate tensors, as ONNX Runtime infers them when
/// it loads the model: the tensors are exposed as extra graph outputs of a copy, and the session's
/// output metadata is read back. Symbolic dimensions keep their names.
/// </summary>
public static class TypeInference
{
    /// <summary>
    /// The type of every tensor in <paramref name="names"/> (every node output when null) that is
    /// a tensor; graph inputs and outputs come from the graph itself.
    /// </summary>
    public static Dictionary<string, ValueInfoProto> Infer(OnnxModel model, IEnumerable<string>? names = null)
    {
        var result = new Dictionary<string, ValueInfoProto>(StringComparer.Ordinal);
        foreach (var value in model.Graph.Input.Concat(model.Graph.Output))
        {
            if (value.Type?.TensorType?.Shape is not null)
            {
                result[value.Name] = value;
            }
        }

        var wanted = (names ?? model.Graph.Node.SelectMany(n => n.Output))
            .Where(n => n.Length > 0 && !result.ContainsKey(n))
            .Distinct(StringComparer.Ordinal)
            .ToList();
        if (wanted.Count == 0)
        {
            return result;
        }

        var copy = model.Clone();
        var outputs = copy.Graph.Output.Select(o => o.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var name in wanted.Where(outputs.Add))
        {
            copy.Graph.Output.Add(new ValueInfoProto { Name = name });
        }

        using var session = OrtRunner.Open(copy.ToBytes(), GraphOptimizationLevel.ORT_DISABLE_ALL, threads: 1);
        foreach (var name in wanted)
        {
            if (!session.OutputMetadata.TryGetValue(name, out var metadata) || !metadata.IsTensor)
            {
                continue;
            }

            var shape = new TensorShapeProto();
            for (var i = 0; i < metadata.Dimensions.Length; i++)
            {
                var symbol = i < metadata.SymbolicDimensions.Length ? metadata.SymbolicDimensions[i] : "";
                shape.Dim.Add(metadata.Dimensions[i] >= 0
                    ? new TensorShapeProto.Types.Dimension { DimValue = metadata.Dimensions[i] }
                    : symbol.Length > 0 ? new TensorShapeProto.Types.Dimension { DimParam = symbol } : new TensorShapeProto.Types.Dimension());
            }

            result[name] = new ValueInfoProto
            {
                Name = name,
                Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)metadata.ElementDataType, Shape = shape } },
            };
        }

        return result;
    }

    /// <summary>The element type of a value, or 0 when unknown.</summary>
    public static int ElementType(this IReadOnlyDictionary<string, ValueInfoProto> types, string name) =>
        types.TryGetValue(name, out var value) ? value.Type?.TensorType?.ElemType ?? 0 : 0;
}
