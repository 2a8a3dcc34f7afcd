using System.Buffers;
using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using EffServe.Gateway.Forwarding;

namespace EffServe.Gateway.Routing;

/// <summary>Why the model could not be read from a message.</summary>
public enum PeekError
{
    None,

    /// <summary>Not a well-formed gRPC frame or protobuf message (INVALID_ARGUMENT).</summary>
    Malformed,

    /// <summary>Compressed with an encoding the gateway cannot read (UNIMPLEMENTED).</summary>
    UnsupportedCompression,

    /// <summary>Inflates to more than the gateway's message limit (RESOURCE_EXHAUSTED).</summary>
    TooLarge,
}

/// <summary>
/// Reads field 1 of a protobuf message (model_name of ModelInferRequest; name of the
/// ModelMetadata/ModelReady/ModelConfig requests; model of SubmitJob; the job id of the job calls)
/// as bytes arrive, without deserialising it or holding it: every other field is skipped by its
/// length, so tensor bytes are counted, never parsed. Memory is constant whatever the message's
/// size. A later occurrence of field 1 wins, as protobuf says.
/// </summary>
public sealed class Field1Scanner
{
    /// <summary>The longest model name or job id read (in UTF-8 bytes).</summary>
    public const int MaxNameBytes = 512;

    private static readonly UTF8Encoding s_strictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private readonly byte[] _name = new byte[MaxNameBytes];
    private State _state = State.Tag;
    private ulong _varint;
    private int _shift;
    private ulong _field;
    private long _left;
    private int _nameLength = -1;
    private int _filled;
    private long _position;

    private enum State
    {
        Tag,
        VarintValue,
        Length,
        Skip,
        Name,
    }

    /// <summary>Why the message is malformed; empty while it is not.</summary>
    public string Problem { get; private set; } = "";

    /// <summary>Bytes scanned so far.</summary>
    public long Position => _position;

    /// <summary>Scans the next bytes of the message; false (with <see cref="Problem"/>) once it is malformed.</summary>
    public bool Feed(ReadOnlySpan<byte> data)
    {
        if (Problem.Length > 0)
        {
            return false;
        }

        var i = 0;
        while (i < data.Length)
        {
            switch (_state)
            {
                case State.Tag:
                case State.VarintValue:
                case State.Length:
                    var b = data[i++];
                    if (_shift >= 64)
                    {
                        return Fail(_state == State.Tag
                            ? $"malformed protobuf field tag at byte {_position + i}"
                            : $"a varint longer than 10 bytes in field {_field}");
                    }

                    _varint |= (ulong)(b & 0x7F) << _shift;
                    _shift += 7;
                    if ((b & 0x80) == 0 && !EndVarint())
                    {
                        return false;
                    }

                    break;
                case State.Skip:
                    var skip = (int)Math.Min(_left, data.Length - i);
                    i += skip;
                    _left -= skip;
                    if (_left == 0)
                    {
                        _state = State.Tag;
                    }

                    break;
                case State.Name:
                    var take = (int)Math.Min(_left, data.Length - i);
                    data.Slice(i, take).CopyTo(_name.AsSpan(_filled));
                    _filled += take;
                    i += take;
                    _left -= take;
                    if (_left == 0)
                    {
                        _nameLength = _filled;
                        _state = State.Tag;
                    }

                    break;
            }
        }

        _position += data.Length;
        return true;
    }

    /// <summary>
    /// Ends the message: true with the last field 1 read (empty when there was none) when it ended
    /// on a field boundary; false, with <see cref="Problem"/>, otherwise.
    /// </summary>
    public bool TryComplete(out string name)
    {
        name = "";
        if (Problem.Length > 0)
        {
            return false;
        }

        if (_state != State.Tag || _shift != 0)
        {
            return Fail(_state switch
            {
                State.Skip or State.Name => $"field {_field} claims more bytes than the message holds",
                State.Tag => $"the message ends inside a field tag after field {_field}",
                _ => $"the message ends inside field {_field}",
            });
        }

        if (_nameLength > 0)
        {
            try
            {
                name = s_strictUtf8.GetString(_name, 0, _nameLength);
            }
            catch (DecoderFallbackException)
            {
                return Fail("the model name is not valid UTF-8");
            }
        }

        return true;
    }

    private bool EndVarint()
    {
        var value = _varint;
        _varint = 0;
        _shift = 0;
        switch (_state)
        {
            case State.Tag:
                _field = value >> 3;
                var wireType = (int)(value & 7);
                if (_field == 0)
                {
                    return Fail("a protobuf field numbered 0");
                }

                switch (wireType)
                {
                    case 0:
                        _state = State.VarintValue;
                        break;
                    case 1:
                    case 5:
                        _left = wireType == 1 ? 8 : 4;
                        _state = State.Skip;
                        break;
                    case 2:
                        _state = State.Length;
                        break;
                    default:
                        return Fail($"unsupported protobuf wire type {wireType} in field {_field}");
                }

                break;
            case State.VarintValue:
                _state = State.Tag;
                break;
            case State.Length:
                if (value > long.MaxValue)
                {
                    return Fail($"field {_field} claims {value} bytes");
                }

                _left = (long)value;
                if (_field == 1)
                {
                    if (_left > MaxNameBytes)
                    {
                        return Fail($"field 1 (the model name) is {_left} bytes long; names are at most {MaxNameBytes}");
                    }

                    _filled = 0;
                    _state = _left == 0 ? State.Tag : State.Name;
                    _nameLength = _left == 0 ? 0 : _nameLength;
                }
                else
                {
                    _state = _left == 0 ? State.Tag : State.Skip;
                }

                break;
        }

        return true;
    }

    private bool Fail(string problem)
    {
        Problem = problem;
        return false;
    }
}

/// <summary>
/// gRPC's length-prefixed messages: the 5-byte prefix (compressed flag, big-endian length), and
/// reading field 1 of a whole message, inflating a compressed one as it is scanned, never past a limit.
/// </summary>
public static class GrpcFrames
{
    public const int PrefixLength = 5;

    private const int InflateChunk = 16 * 1024;

    /// <summary>The message length the prefix at the start of <paramref name="data"/> declares; -1 when fewer than 5 bytes are known.</summary>
    public static long MessageLength(ReadOnlySequence<byte> data)
    {
        if (data.Length < PrefixLength)
        {
            return -1;
        }

        Span<byte> prefix = stackalloc byte[PrefixLength];
        data.Slice(0, PrefixLength).CopyTo(prefix);
        return BinaryPrimitives.ReadUInt32BigEndian(prefix[1..]);
    }

    /// <summary>
    /// Reads field 1 of the message in the complete frame <paramref name="frame"/> (prefix included).
    /// A compressed message (flag 1) is inflated in small chunks as it is scanned; one that inflates to
    /// more than <paramref name="maxMessageBytes"/> is refused without ever being held.
    /// </summary>
    public static PeekError TryReadField1(ReadOnlySequence<byte> frame, string? encoding, int maxMessageBytes, out string name, out string detail)
    {
        name = "";
        detail = "";
        if (frame.Length < PrefixLength)
        {
            detail = "the request ended before a complete gRPC frame prefix";
            return PeekError.Malformed;
        }

        return TryReadMessageField1(frame.Slice(PrefixLength), frame.FirstSpan[0], encoding, maxMessageBytes, out name, out detail);
    }

    /// <summary>
    /// As <see cref="TryReadField1"/>, for a message whose prefix was read apart: its compression
    /// <paramref name="flag"/> and its bytes.
    /// </summary>
    public static PeekError TryReadMessageField1(ReadOnlySequence<byte> message, byte flag, string? encoding, int maxMessageBytes, out string name, out string detail)
    {
        name = "";
        detail = "";
        var scanner = new Field1Scanner();
        switch (flag)
        {
            case 0:
                foreach (var segment in message)
                {
                    if (!scanner.Feed(segment.Span))
                    {
                        break;
                    }
                }

                break;
            case 1:
                var inflated = ScanInflated(message, encoding, maxMessageBytes, scanner, out detail);
                if (inflated != PeekError.None)
                {
                    return inflated;
                }

                break;
            default:
                detail = $"the gRPC frame's compression flag is {flag}; it must be 0 or 1";
                return PeekError.Malformed;
        }

        if (!scanner.TryComplete(out name))
        {
            detail = scanner.Problem;
            return PeekError.Malformed;
        }

        return PeekError.None;
    }

    private static PeekError ScanInflated(ReadOnlySequence<byte> message, string? encoding, int maxMessageBytes, Field1Scanner scanner, out string detail)
    {
        detail = "";
        using var source = new SequenceStream(message);
        using Stream? inflater = encoding switch
        {
            "gzip" => new GZipStream(source, CompressionMode.Decompress),
            "deflate" => new ZLibStream(source, CompressionMode.Decompress),
            _ => null,
        };
        if (inflater is null)
        {
            detail = $"the message is compressed with '{encoding}'";
            return PeekError.UnsupportedCompression;
        }

        var chunk = ArrayPool<byte>.Shared.Rent(InflateChunk);
        try
        {
            long total = 0;
            int read;
            while ((read = inflater.Read(chunk, 0, InflateChunk)) > 0)
            {
                total += read;
                if (total > maxMessageBytes)
                {
                    detail = $"the {encoding}-compressed message inflates to more than the limit of {maxMessageBytes} bytes";
                    return PeekError.TooLarge;
                }

                if (!scanner.Feed(chunk.AsSpan(0, read)))
                {
                    return PeekError.None; // the scanner holds the problem
                }
            }

            return PeekError.None;
        }
        catch (InvalidDataException e)
        {
            detail = $"the {encoding}-compressed message cannot be inflated: {e.Message}";
            return PeekError.Malformed;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(chunk);
        }
    }
}
