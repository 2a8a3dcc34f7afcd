using EffServe.Core.Tensors;
using EffServe.Core.Zoo;
using Microsoft.ML.OnnxRuntime;

namespace EffServe.Onnx;

/// <summary>Reads a graph's inputs and outputs by opening it in ONNX Runtime with no optimisation.</summary>
public sealed class OnnxGraphReader : IGraphReader
{
    public GraphSignature Read(string path)
    {
        try
        {
            using var options = new SessionOptions
            {
                GraphOptimizationLevel = GraphOptimizationLevel.ORT_DISABLE_ALL,
                IntraOpNumThreads = 1,
                InterOpNumThreads = 1,
                LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_FATAL,
            };
            using var session = new InferenceSession(path, options);
            return new GraphSignature(ToSpecs(session.InputMetadata), ToSpecs(session.OutputMetadata));
        }
        catch (OnnxRuntimeException e)
        {
            throw new InvalidDataException(FirstLine(e.Message), e);
        }
    }

    internal static List<TensorSpec> ToSpecs(IReadOnlyDictionary<string, NodeMetadata> metadata)
    {
        var specs = new List<TensorSpec>(metadata.Count);
        foreach (var (name, node) in metadata)
        {
            if (!node.IsTensor || !OrtTypes.TryToDataType(node.ElementDataType, out var type))
            {
                throw new InvalidDataException($"'{name}' is a {node.OnnxValueType} of {node.ElementDataType}; EffServe serves tensors of the protocol's datatypes only.");
            }

            specs.Add(new TensorSpec(name, type, node.Dimensions.Select(d => d < 0 ? -1L : d).ToArray()));
        }

        return specs;
    }

    private static string FirstLine(string message)
    {
        var end = message.IndexOf('\n', StringComparison.Ordinal);
        return end < 0 ? message : message[..end];
    }
}
