using System.Buffers.Binary;
using EffServe.Contracts.Inference;
using EffServe.Core.Protocol;
using EffServe.Core.Tensors;
using Google.Protobuf;

namespace EffServe.Inference.Caching;

/// <summary>
/// A cached answer: the outputs in raw form (so it serves raw and typed requests alike), the
/// response parameters that describe how it was made (variant, exit stage, threshold, batch size),
/// and the accuracy of what made it, checked against each request's accuracy floor.
/// Serialized as a format byte, the accuracy (NaN when unknown) and the response message.
/// </summary>
internal sealed class CachedAnswer
{
    private const byte Format = 1;
    private const int HeaderBytes = 9;

    private static readonly string[] s_kept = [ParameterNames.Variant, ParameterNames.ExitStage, ParameterNames.ExitStages, ParameterNames.ExitThreshold, ParameterNames.BatchSize];

    private CachedAnswer(ModelInferResponse response, double? accuracy, byte[] bytes)
    {
        Response = response;
        Accuracy = accuracy;
        Bytes = bytes;
    }

    /// <summary>Outputs in raw form and the kept parameters only.</summary>
    public ModelInferResponse Response { get; }

    /// <summary>Accuracy of the variant (at its threshold) that made the answer; null when its profile has none.</summary>
    public double? Accuracy { get; }

    public byte[] Bytes { get; }

    public string Variant => Response.Parameters.TryGetValue(ParameterNames.Variant, out var v) ? v.StringParam : "";

    /// <summary>Whether the answer may serve a request with accuracy floor <paramref name="floor"/>.</summary>
    public bool Meets(double? floor) => floor is not { } f || (Accuracy is { } a && a >= f);

    public static CachedAnswer FromResponse(ModelInferResponse response, double? accuracy)
    {
        var stored = new ModelInferResponse { ModelName = response.ModelName, ModelVersion = response.ModelVersion };
        var raw = response.RawOutputContents.Count > 0;
        for (var i = 0; i < response.Outputs.Count; i++)
        {
            var output = response.Outputs[i];
            var copy = new ModelInferResponse.Types.InferOutputTensor { Name = output.Name, Datatype = output.Datatype };
            copy.Shape.AddRange(output.Shape);
            stored.Outputs.Add(copy);
            stored.RawOutputContents.Add(raw ? response.RawOutputContents[i] : OutputContents.ToRaw(output));
        }

        foreach (var key in s_kept)
        {
            if (response.Parameters.TryGetValue(key, out var value))
            {
                stored.Parameters[key] = value;
            }
        }

        var bytes = new byte[HeaderBytes + stored.CalculateSize()];
        bytes[0] = Format;
        BinaryPrimitives.WriteDoubleLittleEndian(bytes.AsSpan(1), accuracy ?? double.NaN);
        stored.WriteTo(bytes.AsSpan(HeaderBytes));
        return new CachedAnswer(stored, accuracy, bytes);
    }

    /// <summary>The answer stored as <paramref name="bytes"/>, or null when they are not in this format (written by another version).</summary>
    public static CachedAnswer? FromBytes(byte[] bytes)
    {
        if (bytes.Length < HeaderBytes || bytes[0] != Format)
        {
            return null;
        }

        var accuracy = BinaryPrimitives.ReadDoubleLittleEndian(bytes.AsSpan(1));
        try
        {
            var response = ModelInferResponse.Parser.ParseFrom(bytes.AsSpan(HeaderBytes));
            return new CachedAnswer(response, double.IsNaN(accuracy) ? null : accuracy, bytes);
        }
        catch (InvalidProtocolBufferException)
        {
            return null;
        }
    }

    /// <summary>
    /// A response for one request from this answer: the request's id, raw outputs when the request
    /// was raw (or an output has no typed form), typed otherwise; the caller adds what the hit cost.
    /// </summary>
    public ModelInferResponse ToResponse(ModelInferRequest request)
    {
        var response = new ModelInferResponse { ModelName = Response.ModelName, ModelVersion = Response.ModelVersion, Id = request.Id };
        response.Parameters.Add(Response.Parameters);
        var raw = request.RawInputContents.Count > 0 || Response.Outputs.Any(o => o.Datatype is "FP16" or "BF16");
        for (var i = 0; i < Response.Outputs.Count; i++)
        {
            var output = Response.Outputs[i];
            if (raw)
            {
                response.Outputs.Add(output);
                response.RawOutputContents.Add(Response.RawOutputContents[i]);
            }
            else
            {
                var typed = output.Clone();
                typed.Contents = OutputContents.ToTyped(output.Datatype, Response.RawOutputContents[i]);
                response.Outputs.Add(typed);
            }
        }

        return response;
    }
}

/// <summary>Moves output tensors between typed contents and the raw little-endian form.</summary>
internal static class OutputContents
{
    public static ByteString ToRaw(ModelInferResponse.Types.InferOutputTensor output)
    {
        var c = output.Contents ?? new InferTensorContents();
        if (!DataTypes.TryParse(output.Datatype, out var type))
        {
            return ByteString.Empty;
        }

        if (type == DataType.Bytes)
        {
            var length = c.BytesContents.Sum(b => 4 + b.Length);
            var buffer = new byte[length];
            var at = 0;
            foreach (var element in c.BytesContents)
            {
                BinaryPrimitives.WriteInt32LittleEndian(buffer.AsSpan(at), element.Length);
                element.Span.CopyTo(buffer.AsSpan(at + 4));
                at += 4 + element.Length;
            }

            return UnsafeByteOperations.UnsafeWrap(buffer);
        }

        return type switch
        {
            DataType.Bool => Pack(c.BoolContents, 1, static (s, v) => s[0] = v ? (byte)1 : (byte)0),
            DataType.Fp32 => Pack(c.Fp32Contents, 4, BinaryPrimitives.WriteSingleLittleEndian),
            DataType.Fp64 => Pack(c.Fp64Contents, 8, BinaryPrimitives.WriteDoubleLittleEndian),
            DataType.Int64 => Pack(c.Int64Contents, 8, BinaryPrimitives.WriteInt64LittleEndian),
            DataType.UInt64 => Pack(c.Uint64Contents, 8, BinaryPrimitives.WriteUInt64LittleEndian),

            // Little-endian: an element's low bytes come first, so INT8/INT16 take the first 1 or 2.
            DataType.Int8 or DataType.Int16 or DataType.Int32 => Pack(c.IntContents, type.ElementSize(), static (s, v) => BinaryPrimitives.WriteInt32LittleEndian(s, v)),
            _ => Pack(c.UintContents, type.ElementSize(), static (s, v) => BinaryPrimitives.WriteUInt32LittleEndian(s, v)),
        };
    }

    private delegate void ElementWriter<in T>(Span<byte> destination, T value);

    private static ByteString Pack<T>(IReadOnlyList<T> values, int size, ElementWriter<T> write)
    {
        var bytes = new byte[values.Count * size];
        Span<byte> element = stackalloc byte[8];
        for (var i = 0; i < values.Count; i++)
        {
            write(element, values[i]);
            element[..size].CopyTo(bytes.AsSpan(i * size));
        }

        return UnsafeByteOperations.UnsafeWrap(bytes);
    }

    public static InferTensorContents ToTyped(string datatype, ByteString raw)
    {
        if (datatype != "BYTES")
        {
            return TypedContents.FromRaw(datatype, raw.Span) ?? new InferTensorContents();
        }

        var contents = new InferTensorContents();
        var span = raw.Span;
        var at = 0;
        while (at + 4 <= span.Length)
        {
            var length = BinaryPrimitives.ReadInt32LittleEndian(span[at..]);
            contents.BytesContents.Add(ByteString.CopyFrom(span.Slice(at + 4, length)));
            at += 4 + length;
        }

        return contents;
    }
}
