using System.Buffers;
using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace EffServe.Gateway.Routing;

/// <summary>Why a request's first message could not be read.</summary>
internal enum PeekError
{
    None,
    Malformed,
    UnsupportedCompression,
}

/// <summary>
/// Reads the model name from the first gRPC message of a call without deserialising it: the
/// 5-byte frame prefix, then the message's top-level protobuf fields, skipping every field but
/// field 1 (model_name of ModelInferRequest; name of ModelMetadata/ModelReady/ModelStatistics
/// requests). Tensor bytes are skipped by their length, never parsed.
/// </summary>
internal static class GrpcFrames
{
    public const int PrefixLength = 5;

    private static readonly UTF8Encoding s_strictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>Length of the first frame (prefix + message), or -1 when fewer than 5 bytes are known.</summary>
    public static long FrameLength(ReadOnlySequence<byte> data)
    {
        if (data.Length < PrefixLength)
        {
            return -1;
        }

        Span<byte> prefix = stackalloc byte[PrefixLength];
        data.Slice(0, PrefixLength).CopyTo(prefix);
        return PrefixLength + (long)BinaryPrimitives.ReadUInt32BigEndian(prefix[1..]);
    }

    /// <summary>
    /// Reads field 1 of the message in the complete first frame <paramref name="frame"/>. A compressed
    /// frame is inflated first when <paramref name="encoding"/> is gzip or deflate.
    /// </summary>
    public static PeekError TryReadModelName(ReadOnlySequence<byte> frame, string? encoding, out string name, out string detail)
    {
        name = "";
        detail = "";
        if (frame.Length < PrefixLength)
        {
            detail = "the request ended before a complete gRPC frame prefix";
            return PeekError.Malformed;
        }

        var flag = frame.FirstSpan[0];
        var message = frame.Slice(PrefixLength);
        if (flag == 1)
        {
            var inflated = Inflate(message, encoding, out detail);
            if (inflated is null)
            {
                return detail.Length == 0 ? PeekError.UnsupportedCompression : PeekError.Malformed;
            }

            message = new ReadOnlySequence<byte>(inflated);
        }
        else if (flag != 0)
        {
            detail = $"the gRPC frame's compression flag is {flag}; it must be 0 or 1";
            return PeekError.Malformed;
        }

        return ScanForField1(message, out name, out detail) ? PeekError.None : PeekError.Malformed;
    }

    private static bool ScanForField1(ReadOnlySequence<byte> message, out string name, out string detail)
    {
        var reader = new SequenceReader<byte>(message);
        name = "";
        detail = "";
        while (!reader.End)
        {
            if (!TryReadVarint(ref reader, out var tag) || tag == 0)
            {
                detail = $"malformed protobuf field tag at byte {reader.Consumed}";
                return false;
            }

            var field = tag >> 3;
            var wireType = (int)(tag & 7);
            switch (wireType)
            {
                case 0:
                    if (!TryReadVarint(ref reader, out _))
                    {
                        detail = $"truncated varint in field {field}";
                        return false;
                    }

                    break;
                case 1:
                case 5:
                    var size = wireType == 1 ? 8 : 4;
                    if (reader.Remaining < size)
                    {
                        detail = $"truncated fixed-size field {field}";
                        return false;
                    }

                    reader.Advance(size);
                    break;
                case 2:
                    if (!TryReadVarint(ref reader, out var length) || length > (ulong)reader.Remaining)
                    {
                        detail = $"field {field} claims more bytes than the message holds";
                        return false;
                    }

                    if (field == 1)
                    {
                        var bytes = message.Slice(reader.Position, (long)length);
                        try
                        {
                            name = s_strictUtf8.GetString(bytes);
                        }
                        catch (DecoderFallbackException)
                        {
                            detail = "the model name is not valid UTF-8";
                            return false;
                        }

                        // Keep scanning: protobuf lets a later occurrence of the field win.
                    }

                    reader.Advance((long)length);
                    break;
                default:
                    detail = $"unsupported protobuf wire type {wireType} in field {field}";
                    return false;
            }
        }

        return true;
    }

    private static bool TryReadVarint(ref SequenceReader<byte> reader, out ulong value)
    {
        value = 0;
        for (var shift = 0; shift < 64; shift += 7)
        {
            if (!reader.TryRead(out var b))
            {
                return false;
            }

            value |= (ulong)(b & 0x7F) << shift;
            if ((b & 0x80) == 0)
            {
                return true;
            }
        }

        return false;
    }

    private static byte[]? Inflate(ReadOnlySequence<byte> message, string? encoding, out string detail)
    {
        detail = "";
        Stream? decompressor = null;
        var source = new MemoryStream(message.ToArray());
        switch (encoding)
        {
            case "gzip":
                decompressor = new GZipStream(source, CompressionMode.Decompress);
                break;
            case "deflate":
                decompressor = new ZLibStream(source, CompressionMode.Decompress);
                break;
            default:
                return null; // unsupported: detail stays empty
        }

        using (decompressor)
        {
            try
            {
                using var output = new MemoryStream();
                decompressor.CopyTo(output);
                return output.ToArray();
            }
            catch (InvalidDataException e)
            {
                detail = $"the {encoding}-compressed message cannot be inflated: {e.Message}";
                return null;
            }
        }
    }
}
