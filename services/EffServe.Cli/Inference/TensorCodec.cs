using System.Buffers.Binary;
using EffServe.Contracts.Inference;
using EffServe.Core.Tensors;
using Google.Protobuf;

namespace EffServe.Cli.Inference;

/// <summary>How tensor elements travel in a request.</summary>
public enum TensorEncoding
{
    /// <summary><c>raw_input_contents</c>: the bytes as they are; what fast clients use.</summary>
    Raw,

    /// <summary>The typed <c>contents</c> fields (<c>fp32_contents</c> ...).</summary>
    Typed,
}

/// <summary>Puts tensors into OIP requests and takes them out of responses, raw or typed.</summary>
public static class TensorCodec
{
    /// <summary>Adds <paramref name="tensor"/> to <paramref name="request"/> as its next input.</summary>
    /// <exception cref="CliException">The datatype has no typed field (FP16, BF16) and typed was asked for.</exception>
    public static void AddInput(ModelInferRequest request, NamedTensor tensor, TensorEncoding encoding)
    {
        var input = new ModelInferRequest.Types.InferInputTensor { Name = tensor.Name, Datatype = tensor.DataType.ToWireName() };
        input.Shape.AddRange(tensor.Shape);
        if (encoding == TensorEncoding.Raw)
        {
            request.RawInputContents.Add(ByteString.CopyFrom(tensor.Data.Span));
        }
        else
        {
            input.Contents = ToTyped(tensor.DataType, tensor.Data.Span);
        }

        request.Inputs.Add(input);
    }

    /// <summary>The typed contents holding <paramref name="data"/>, row-major little-endian elements of <paramref name="type"/>.</summary>
    public static InferTensorContents ToTyped(DataType type, ReadOnlySpan<byte> data) =>
        TypedContents.FromRaw(type.ToWireName(), data)
            ?? throw CliException.Usage($"{type.ToWireName()} has no typed contents field in the protocol; it travels only raw (drop --typed).");

    /// <summary>
    /// The elements of output <paramref name="index"/> of <paramref name="response"/> as doubles,
    /// whether the server sent them raw or typed.
    /// </summary>
    /// <exception cref="CliException">The output is missing, not numeric, or its element count does not match its shape.</exception>
    public static double[] ReadOutput(ModelInferResponse response, int index)
    {
        if (index >= response.Outputs.Count)
        {
            throw new CliException(ExitCodes.ServerError, $"the response has {response.Outputs.Count} outputs; output {index} is missing.");
        }

        var output = response.Outputs[index];
        if (!DataTypes.TryParse(output.Datatype, out var type) || type == DataType.Bytes)
        {
            throw new CliException(ExitCodes.ServerError, $"output '{output.Name}' has datatype '{output.Datatype}'; scores must be numeric.");
        }

        double[] values;
        if (response.RawOutputContents.Count > 0)
        {
            if (index >= response.RawOutputContents.Count)
            {
                throw new CliException(ExitCodes.ServerError, $"the response has {response.RawOutputContents.Count} raw output entries for {response.Outputs.Count} outputs.");
            }

            values = FromRaw(type, response.RawOutputContents[index].Span, output.Name);
        }
        else
        {
            values = FromTyped(type, output.Contents ?? new InferTensorContents(), output.Name);
        }

        if (output.Shape.All(d => d >= 0))
        {
            var expected = Shapes.ElementCount(output.Shape);
            if (values.LongLength != expected)
            {
                throw new CliException(ExitCodes.ServerError, $"output '{output.Name}' has shape {Shapes.Format(output.Shape)} ({expected} elements) but carries {values.Length}.");
            }
        }

        return values;
    }

    /// <summary>Raw little-endian elements as doubles.</summary>
    public static double[] FromRaw(DataType type, ReadOnlySpan<byte> data, string name)
    {
        var size = type.ElementSize();
        if (data.Length % size != 0)
        {
            throw new CliException(ExitCodes.ServerError, $"output '{name}' has {data.Length} raw bytes, not a whole number of {type.ToWireName()} elements.");
        }

        var values = new double[data.Length / size];
        for (var i = 0; i < values.Length; i++)
        {
            var e = data.Slice(i * size, size);
            values[i] = type switch
            {
                DataType.Bool or DataType.UInt8 => e[0],
                DataType.Int8 => (sbyte)e[0],
                DataType.UInt16 => BinaryPrimitives.ReadUInt16LittleEndian(e),
                DataType.Int16 => BinaryPrimitives.ReadInt16LittleEndian(e),
                DataType.UInt32 => BinaryPrimitives.ReadUInt32LittleEndian(e),
                DataType.Int32 => BinaryPrimitives.ReadInt32LittleEndian(e),
                DataType.UInt64 => BinaryPrimitives.ReadUInt64LittleEndian(e),
                DataType.Int64 => BinaryPrimitives.ReadInt64LittleEndian(e),
                DataType.Fp16 => (double)BinaryPrimitives.ReadHalfLittleEndian(e),
                DataType.Bf16 => BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(e) << 16),
                DataType.Fp32 => BinaryPrimitives.ReadSingleLittleEndian(e),
                DataType.Fp64 => BinaryPrimitives.ReadDoubleLittleEndian(e),
                _ => throw new CliException(ExitCodes.ServerError, $"output '{name}' has datatype {type.ToWireName()}; scores must be numeric."),
            };
        }

        return values;
    }

    /// <summary>Typed elements as doubles, from the field the protocol assigns to <paramref name="type"/>.</summary>
    public static double[] FromTyped(DataType type, InferTensorContents contents, string name) => type switch
    {
        DataType.Bool => contents.BoolContents.Select(b => b ? 1.0 : 0.0).ToArray(),
        DataType.Int8 or DataType.Int16 or DataType.Int32 => contents.IntContents.Select(v => (double)v).ToArray(),
        DataType.UInt8 or DataType.UInt16 or DataType.UInt32 => contents.UintContents.Select(v => (double)v).ToArray(),
        DataType.Int64 => contents.Int64Contents.Select(v => (double)v).ToArray(),
        DataType.UInt64 => contents.Uint64Contents.Select(v => (double)v).ToArray(),
        DataType.Fp32 => contents.Fp32Contents.Select(v => (double)v).ToArray(),
        DataType.Fp64 => contents.Fp64Contents.ToArray(),
        _ => throw new CliException(ExitCodes.ServerError, $"output '{name}' is {type.ToWireName()}, which travels only raw, but the response has no raw_output_contents."),
    };
}
