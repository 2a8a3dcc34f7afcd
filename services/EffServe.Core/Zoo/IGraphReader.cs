using EffServe.Core.Tensors;

namespace EffServe.Core.Zoo;

/// <summary>Reads the inputs and outputs an ONNX file really has.</summary>
public interface IGraphReader
{
    /// <exception cref="InvalidDataException">The file cannot be read as a model.</exception>
    GraphSignature Read(string path);
}

/// <summary>A graph's inputs and outputs; -1 marks a symbolic or unknown dimension.</summary>
public sealed record GraphSignature(IReadOnlyList<TensorSpec> Inputs, IReadOnlyList<TensorSpec> Outputs);
