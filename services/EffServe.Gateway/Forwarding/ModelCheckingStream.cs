using System.Buffers;
using EffServe.Gateway.Routing;

namespace EffServe.Gateway.Forwarding;

/// <summary>
/// The later messages of a routed stream, passed on as they arrive, each checked to name the model
/// the stream was routed by. A message is scanned before any of its bytes are handed on, so the
/// bytes that would complete a message naming another model are never sent: the stream fails
/// instead and the replica sees an unfinished message, never a call to a model the router did not
/// admit. A compressed message is kept (within the message limit) until it is whole, then inflated
/// as it is scanned.
/// </summary>
internal sealed class ModelCheckingStream(Stream inner, string model, string? encoding, int maxMessageBytes) : ReadOnlyBodyStream
{
    private readonly byte[] _prefix = new byte[GrpcFrames.PrefixLength];
    private int _prefixFilled;
    private long _messageLeft = -1;
    private Field1Scanner? _scanner;
    private ArrayBufferWriter<byte>? _compressed;

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var read = await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
        if (read == 0 && (_prefixFilled > 0 || _messageLeft > 0))
        {
            throw new StreamMessageRefusedException("The stream ended inside a gRPC message.");
        }

        Check(buffer.Span[..read]);
        return read;
    }

    private void Check(ReadOnlySpan<byte> data)
    {
        while (!data.IsEmpty)
        {
            if (_messageLeft < 0)
            {
                var take = Math.Min(GrpcFrames.PrefixLength - _prefixFilled, data.Length);
                data[..take].CopyTo(_prefix.AsSpan(_prefixFilled));
                _prefixFilled += take;
                data = data[take..];
                if (_prefixFilled < GrpcFrames.PrefixLength)
                {
                    return;
                }

                _prefixFilled = 0;
                _messageLeft = GrpcFrames.MessageLength(new ReadOnlySequence<byte>(_prefix));
                if (_messageLeft > maxMessageBytes)
                {
                    throw new StreamMessageRefusedException($"A message of the stream is larger than the gateway's limit of {maxMessageBytes} bytes.");
                }

                _scanner = _prefix[0] == 0 ? new Field1Scanner() : null;
                _compressed = _prefix[0] == 0 ? null : new ArrayBufferWriter<byte>();
                if (_prefix[0] > 1)
                {
                    throw new StreamMessageRefusedException($"A message of the stream has compression flag {_prefix[0]}; it must be 0 or 1.");
                }
            }

            var part = (int)Math.Min(_messageLeft, data.Length);
            if (_scanner is not null && !_scanner.Feed(data[..part]))
            {
                throw new StreamMessageRefusedException($"A message of the stream is not well formed: {_scanner.Problem}.");
            }

            _compressed?.Write(data[..part]);
            data = data[part..];
            _messageLeft -= part;
            if (_messageLeft == 0)
            {
                EndMessage();
            }
        }
    }

    private void EndMessage()
    {
        string named;
        if (_compressed is not null)
        {
            if (GrpcFrames.TryReadMessageField1(new ReadOnlySequence<byte>(_compressed.WrittenMemory), _prefix[0], encoding, maxMessageBytes, out named, out var detail) != PeekError.None)
            {
                throw new StreamMessageRefusedException($"A message of the stream could not be read: {detail}.");
            }
        }
        else if (!_scanner!.TryComplete(out named))
        {
            throw new StreamMessageRefusedException($"A message of the stream is not well formed: {_scanner.Problem}.");
        }

        _messageLeft = -1;
        _scanner = null;
        _compressed = null;
        if (!string.Equals(named, model, StringComparison.Ordinal))
        {
            throw new StreamMessageRefusedException($"A message of the stream names model '{named}'; this stream was routed to '{model}', and every message of a stream must name the same model.");
        }
    }
}

/// <summary>A later message of a stream that the gateway refuses to pass on: the caller's fault, never the replica's.</summary>
internal sealed class StreamMessageRefusedException(string message) : IOException(message);
