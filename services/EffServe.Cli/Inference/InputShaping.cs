using EffServe.Core.Tensors;
using EffServe.Contracts.Inference;

namespace EffServe.Cli.Inference;

/// <summary>Fits an array a user supplies to the model input it is meant for.</summary>
public static class InputShaping
{
    /// <summary>
    /// The tensor to send for <paramref name="array"/> as input <paramref name="input"/>: a leading
    /// batch dimension of 1 is added when the array's rank is one less than the input's, so a
    /// single sample saved without its batch dimension can be sent as is; a leading dimension of 1
    /// is dropped when the input has no batch dimension and the array is one rank too many.
    /// </summary>
    /// <exception cref="CliException">The datatype or shape does not fit (invalid input).</exception>
    public static NamedTensor Fit(NpyArray array, ModelMetadataResponse.Types.TensorMetadata input, string source)
    {
        if (!DataTypes.TryParse(input.Datatype, out var expectedType))
        {
            throw CliException.InvalidInput($"input '{input.Name}' has datatype '{input.Datatype}', which this client cannot send.");
        }

        if (array.DataType != expectedType)
        {
            throw CliException.InvalidInput($"{source} holds {array.DataType.ToWireName()} but input '{input.Name}' takes {input.Datatype}; convert it first (numpy: a.astype(...)).");
        }

        var declared = input.Shape;
        long[] shape = [.. array.Shape];
        if (shape.Length + 1 == declared.Count)
        {
            shape = [1L, .. shape];
        }
        else if (shape.Length == declared.Count + 1 && shape[0] == 1)
        {
            shape = shape[1..];
        }

        if (!Shapes.Accepts(declared, shape))
        {
            throw CliException.InvalidInput($"{source} has shape {Shapes.Format(array.Shape)} but input '{input.Name}' takes {Shapes.Format(declared)} (-1: any size).");
        }

        return NamedTensor.FromBytes(input.Name, array.DataType, shape, array.Data);
    }
}
