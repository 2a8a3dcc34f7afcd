using System.Buffers.Binary;
using System.Runtime.InteropServices;
using EffServe.Contracts.Inference;
using EffServe.Core.Tensors;
using EffServe.Core.Zoo;
using EffServe.Inference.Rpc;
using Google.Protobuf;
using Grpc.Core;

namespace EffServe.Inference.Serving;

/// <summary>
/// Turns a request's input tensors (raw or typed contents) into validated <see cref="NamedTensor"/>s,
/// and outputs back into the wire form. The problems of a request are reported in one
/// INVALID_ARGUMENT status that names the tensor and what was expected (the first few, and how
/// many more: <see cref="StatusDetails.Problems"/>).
/// </summary>
internal static class TensorCodec
{
    public static List<NamedTensor> DecodeInputs(ModelInferRequest request, ModelDefinition model)
    {
        var expected = string.Join(", ", model.Inputs);
        if (request.Inputs.Count == 0)
        {
            throw Invalid(model, [$"the request has no inputs; the model expects {expected}."]);
        }

        var raw = request.RawInputContents.Count > 0;
        if (raw && request.RawInputContents.Count != request.Inputs.Count)
        {
            throw Invalid(model, [$"raw_input_contents has {request.RawInputContents.Count} entries for {request.Inputs.Count} inputs; send one entry per input, in the order of inputs."]);
        }

        var problems = new List<string>();
        var tensors = new List<NamedTensor>(request.Inputs.Count);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        long? batch = null;
        for (var i = 0; i < request.Inputs.Count; i++)
        {
            var input = request.Inputs[i];
            if (!seen.Add(input.Name))
            {
                problems.Add($"input '{StatusDetails.Quote(input.Name)}' appears twice.");
                continue;
            }

            var spec = model.Inputs.FirstOrDefault(s => s.Name == input.Name);
            if (spec is null)
            {
                problems.Add($"'{StatusDetails.Quote(input.Name)}' is not an input of the model (inputs: {expected}).");
                continue;
            }

            if (raw && HasTypedContents(input.Contents))
            {
                problems.Add($"input '{input.Name}' has typed contents while the request also uses raw_input_contents; use one or the other for all inputs.");
                continue;
            }

            if (!DataTypes.TryParse(input.Datatype, out var type))
            {
                problems.Add($"input '{input.Name}' has datatype '{StatusDetails.Quote(input.Datatype)}', which is not a protocol datatype; the model expects {spec.DataType.ToWireName()}.");
                continue;
            }

            if (type != spec.DataType)
            {
                problems.Add($"input '{input.Name}' has datatype {type.ToWireName()} but the model expects {spec.DataType.ToWireName()}.");
                continue;
            }

            var shape = input.Shape.ToArray();
            if (!CheckShape(input.Name, spec, shape, model, problems))
            {
                continue;
            }

            if (model.HasBatchDimension)
            {
                batch ??= shape[0];
                if (shape[0] != batch)
                {
                    problems.Add($"input '{input.Name}' has batch size {shape[0]} but an earlier input has {batch}; every input carries the same batch.");
                    continue;
                }
            }

            var tensor = raw
                ? FromRaw(input.Name, type, shape, request.RawInputContents[i], problems)
                : FromTyped(input.Name, type, shape, input.Contents, problems);
            if (tensor is not null)
            {
                tensors.Add(tensor);
            }
        }

        foreach (var missing in model.Inputs.Where(s => !seen.Contains(s.Name)))
        {
            problems.Add($"input {missing} is missing.");
        }

        if (problems.Count > 0)
        {
            throw Invalid(model, problems);
        }

        return tensors;
    }

    /// <summary>The outputs to compute: those requested, or every output of the model when none is.</summary>
    public static List<string> ResolveOutputs(ModelInferRequest request, ModelDefinition model)
    {
        if (request.Outputs.Count == 0)
        {
            return model.Outputs.Select(o => o.Name).ToList();
        }

        var problems = new List<string>();
        var names = new List<string>(request.Outputs.Count);
        foreach (var output in request.Outputs)
        {
            if (model.Outputs.All(o => o.Name != output.Name))
            {
                problems.Add($"requested output '{StatusDetails.Quote(output.Name)}' is not an output of the model (outputs: {string.Join(", ", model.Outputs)}).");
            }
            else if (names.Contains(output.Name))
            {
                problems.Add($"output '{output.Name}' is requested twice.");
            }
            else
            {
                names.Add(output.Name);
            }

            foreach (var key in output.Parameters.Keys.Where(k => k != "binary_data"))
            {
                problems.Add($"output parameter '{StatusDetails.Quote(key)}' (on '{StatusDetails.Quote(output.Name)}') is not supported.");
            }
        }

        if (problems.Count > 0)
        {
            throw Invalid(model, problems);
        }

        return names;
    }

    /// <summary>
    /// Writes outputs into the response: raw contents when <paramref name="raw"/> or when a datatype has
    /// no typed field (FP16, BF16), typed contents otherwise.
    /// </summary>
    public static void EncodeOutputs(IReadOnlyList<NamedTensor> outputs, bool raw, ModelInferResponse response)
    {
        raw |= outputs.Any(o => o.DataType is DataType.Fp16 or DataType.Bf16);
        foreach (var tensor in outputs)
        {
            var output = new ModelInferResponse.Types.InferOutputTensor
            {
                Name = tensor.Name,
                Datatype = tensor.DataType.ToWireName(),
            };
            output.Shape.AddRange(tensor.Shape);
            if (raw)
            {
                response.RawOutputContents.Add(tensor.DataType == DataType.Bytes
                    ? UnsafeByteOperations.UnsafeWrap(EncodeRawStrings(tensor.Strings!))
                    : UnsafeByteOperations.UnsafeWrap(tensor.Data));
            }
            else
            {
                output.Contents = ToTyped(tensor);
            }

            response.Outputs.Add(output);
        }
    }

    private static bool CheckShape(string name, TensorSpec spec, long[] shape, ModelDefinition model, List<string> problems)
    {
        if (shape.Any(d => d < 0))
        {
            problems.Add($"input '{name}' has shape {Shapes.Format(shape)}; dimensions cannot be negative in a request.");
            return false;
        }

        if (!Shapes.Accepts(spec.Shape, shape))
        {
            problems.Add($"input '{name}' has shape {Shapes.Format(shape)} but the model expects {Shapes.Format(spec.Shape)} (-1 = any size).");
            return false;
        }

        if (model.HasBatchDimension)
        {
            if (shape[0] == 0)
            {
                problems.Add($"input '{name}' has batch size 0; send at least one sample.");
                return false;
            }

            if (shape[0] > model.MaxBatchSize)
            {
                problems.Add($"input '{name}' has batch size {shape[0]}, above the model's max_batch_size of {model.MaxBatchSize}; split the request.");
                return false;
            }
        }

        try
        {
            _ = Shapes.ElementCount(shape);
        }
        catch (OverflowException)
        {
            problems.Add($"input '{name}' has shape {Shapes.Format(shape)}, too large to address.");
            return false;
        }

        return true;
    }

    private static NamedTensor? FromRaw(string name, DataType type, long[] shape, ByteString bytes, List<string> problems)
    {
        var count = Shapes.ElementCount(shape);
        if (type == DataType.Bytes)
        {
            var strings = DecodeRawStrings(bytes.Memory, out var error);
            if (error is not null)
            {
                problems.Add($"input '{name}' raw BYTES contents are malformed: {error}");
                return null;
            }

            if (strings.Count != count)
            {
                problems.Add($"input '{name}' raw contents hold {strings.Count} BYTES elements; shape {Shapes.Format(shape)} needs {count}.");
                return null;
            }

            return NamedTensor.FromStrings(name, shape, strings);
        }

        var needed = count * type.ElementSize();
        if (bytes.Length != needed)
        {
            problems.Add($"input '{name}' raw contents hold {bytes.Length} bytes; shape {Shapes.Format(shape)} of {type.ToWireName()} needs {needed}.");
            return null;
        }

        return NamedTensor.FromBytes(name, type, shape, bytes.Memory);
    }

    private static NamedTensor? FromTyped(string name, DataType type, long[] shape, InferTensorContents? contents, List<string> problems)
    {
        contents ??= new InferTensorContents();
        var count = Shapes.ElementCount(shape);
        var (field, filled) = TypedField(type, contents);
        if (field is null)
        {
            problems.Add($"input '{name}' is {type.ToWireName()}, which travels only as raw bytes (raw_input_contents).");
            return null;
        }

        if (filled != count)
        {
            var other = FilledFields(contents).Where(f => f != field).ToList();
            problems.Add(other.Count > 0 && filled == 0
                ? $"input '{name}' is {type.ToWireName()}, so its elements go in {field}, but the request filled {string.Join(", ", other)}."
                : $"input '{name}' has {filled} elements in {field}; shape {Shapes.Format(shape)} needs {count}.");
            return null;
        }

        switch (type)
        {
            case DataType.Bytes:
                return NamedTensor.FromStrings(name, shape, contents.BytesContents.Select(b => b.Memory).ToArray());
            case DataType.Bool:
                return Fixed(name, type, shape, contents.BoolContents, static (b, s) => s[0] = b ? (byte)1 : (byte)0);
            case DataType.Fp32:
                return Fixed(name, type, shape, contents.Fp32Contents, static (v, s) => BinaryPrimitives.WriteSingleLittleEndian(s, v));
            case DataType.Fp64:
                return Fixed(name, type, shape, contents.Fp64Contents, static (v, s) => BinaryPrimitives.WriteDoubleLittleEndian(s, v));
            case DataType.Int64:
                return Fixed(name, type, shape, contents.Int64Contents, static (v, s) => BinaryPrimitives.WriteInt64LittleEndian(s, v));
            case DataType.UInt64:
                return Fixed(name, type, shape, contents.Uint64Contents, static (v, s) => BinaryPrimitives.WriteUInt64LittleEndian(s, v));
            case DataType.Int32:
                return Fixed(name, type, shape, contents.IntContents, static (v, s) => BinaryPrimitives.WriteInt32LittleEndian(s, v));
            case DataType.UInt32:
                return Fixed(name, type, shape, contents.UintContents, static (v, s) => BinaryPrimitives.WriteUInt32LittleEndian(s, v));
            case DataType.Int8 or DataType.Int16:
                {
                    long min = type == DataType.Int8 ? sbyte.MinValue : short.MinValue;
                    long max = type == DataType.Int8 ? sbyte.MaxValue : short.MaxValue;
                    foreach (var v in contents.IntContents)
                    {
                        if (v < min || v > max)
                        {
                            problems.Add($"input '{name}' holds {v} in int_contents, outside the range of {type.ToWireName()} ({min} to {max}).");
                            return null;
                        }
                    }

                    return type == DataType.Int8
                        ? Fixed(name, type, shape, contents.IntContents, static (v, s) => s[0] = unchecked((byte)(sbyte)v))
                        : Fixed(name, type, shape, contents.IntContents, static (v, s) => BinaryPrimitives.WriteInt16LittleEndian(s, (short)v));
                }

            case DataType.UInt8 or DataType.UInt16:
                {
                    var max = type == DataType.UInt8 ? byte.MaxValue : ushort.MaxValue;
                    if (contents.UintContents.Any(v => v > max))
                    {
                        problems.Add($"input '{name}' holds {contents.UintContents.First(v => v > max)} in uint_contents, above the largest {type.ToWireName()} ({max}).");
                        return null;
                    }

                    return type == DataType.UInt8
                        ? Fixed(name, type, shape, contents.UintContents, static (v, s) => s[0] = (byte)v)
                        : Fixed(name, type, shape, contents.UintContents, static (v, s) => BinaryPrimitives.WriteUInt16LittleEndian(s, (ushort)v));
                }

            default:
                problems.Add($"input '{name}' is {type.ToWireName()}, which has no typed contents; send it raw.");
                return null;
        }
    }

    private delegate void ElementWriter<in T>(T value, Span<byte> destination);

    private static NamedTensor Fixed<T>(string name, DataType type, long[] shape, IReadOnlyList<T> values, ElementWriter<T> write)
    {
        var size = type.ElementSize();
        var bytes = new byte[values.Count * size];
        for (var i = 0; i < values.Count; i++)
        {
            write(values[i], bytes.AsSpan(i * size, size));
        }

        return NamedTensor.FromBytes(name, type, shape, bytes);
    }

    private static (string? Field, int Count) TypedField(DataType type, InferTensorContents c) => type switch
    {
        DataType.Bool => ("bool_contents", c.BoolContents.Count),
        DataType.Int8 or DataType.Int16 or DataType.Int32 => ("int_contents", c.IntContents.Count),
        DataType.UInt8 or DataType.UInt16 or DataType.UInt32 => ("uint_contents", c.UintContents.Count),
        DataType.Int64 => ("int64_contents", c.Int64Contents.Count),
        DataType.UInt64 => ("uint64_contents", c.Uint64Contents.Count),
        DataType.Fp32 => ("fp32_contents", c.Fp32Contents.Count),
        DataType.Fp64 => ("fp64_contents", c.Fp64Contents.Count),
        DataType.Bytes => ("bytes_contents", c.BytesContents.Count),
        _ => (null, 0),
    };

    private static IEnumerable<string> FilledFields(InferTensorContents c)
    {
        if (c.BoolContents.Count > 0)
        {
            yield return "bool_contents";
        }

        if (c.IntContents.Count > 0)
        {
            yield return "int_contents";
        }

        if (c.Int64Contents.Count > 0)
        {
            yield return "int64_contents";
        }

        if (c.UintContents.Count > 0)
        {
            yield return "uint_contents";
        }

        if (c.Uint64Contents.Count > 0)
        {
            yield return "uint64_contents";
        }

        if (c.Fp32Contents.Count > 0)
        {
            yield return "fp32_contents";
        }

        if (c.Fp64Contents.Count > 0)
        {
            yield return "fp64_contents";
        }

        if (c.BytesContents.Count > 0)
        {
            yield return "bytes_contents";
        }
    }

    private static bool HasTypedContents(InferTensorContents? contents) =>
        contents is not null && FilledFields(contents).Any();

    private static InferTensorContents ToTyped(NamedTensor tensor)
    {
        if (tensor.DataType == DataType.Bytes)
        {
            var c = new InferTensorContents();
            c.BytesContents.AddRange(tensor.Strings!.Select(s => ByteString.CopyFrom(s.Span)));
            return c;
        }

        return TypedContents.FromRaw(tensor.DataType.ToWireName(), tensor.Data.Span)
            ?? throw new InvalidOperationException($"{tensor.DataType.ToWireName()} has no typed contents.");
    }

    /// <summary>Parses raw BYTES contents: each element is a 4-byte little-endian length and that many bytes.</summary>
    internal static List<ReadOnlyMemory<byte>> DecodeRawStrings(ReadOnlyMemory<byte> bytes, out string? error)
    {
        var strings = new List<ReadOnlyMemory<byte>>();
        var offset = 0;
        var span = bytes.Span;
        while (offset < span.Length)
        {
            if (span.Length - offset < 4)
            {
                error = $"{span.Length - offset} stray bytes at offset {offset}, too few for a 4-byte length.";
                return strings;
            }

            var length = BinaryPrimitives.ReadUInt32LittleEndian(span[offset..]);
            offset += 4;
            if (length > (uint)(span.Length - offset))
            {
                error = $"element {strings.Count} claims {length} bytes at offset {offset - 4} but only {span.Length - offset} remain.";
                return strings;
            }

            strings.Add(bytes.Slice(offset, (int)length));
            offset += (int)length;
        }

        error = null;
        return strings;
    }

    internal static byte[] EncodeRawStrings(IReadOnlyList<ReadOnlyMemory<byte>> strings)
    {
        var buffer = new byte[strings.Sum(s => 4 + s.Length)];
        var offset = 0;
        foreach (var s in strings)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(buffer.AsSpan(offset), (uint)s.Length);
            s.Span.CopyTo(buffer.AsSpan(offset + 4));
            offset += 4 + s.Length;
        }

        return buffer;
    }

    private static RpcException Invalid(ModelDefinition model, IReadOnlyList<string> problems) =>
        new(new Status(StatusCode.InvalidArgument, StatusDetails.Problems($"Invalid request for model '{model.Name}':", problems)));
}
