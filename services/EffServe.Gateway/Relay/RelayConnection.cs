using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;

namespace EffServe.Gateway.Relay;

/// <summary>
/// One HTTP/2 connection the relay holds, to a client or to an upstream: reads frames and hands
/// them to the subclass, and writes frames from any thread into a buffer that goes out in one write
/// per batch. Frames read together are answered together: while a read batch is processed, every
/// connection written to is flushed once at its end, on the thread that read the frames.
/// </summary>
internal abstract class RelayConnection
{
    /// <summary>The receive window the relay grants a peer's stream; credit returns as data moves on.</summary>
    public const int StreamReceiveWindow = 1 << 20;

    /// <summary>
    /// The connection-level receive window the relay grants a peer: what the relay may hold for one
    /// connection at most, since credit returns only as bytes move on. It exceeds what streams
    /// waiting for their first message can hold together (100 × <see cref="FrameRelay.MaxRelayedMessageLimit"/>),
    /// so they can never starve each other of window.
    /// </summary>
    public const int ConnectionReceiveWindow = 8 << 20;

    [ThreadStatic]
    private static List<RelayConnection>? t_batch;

    private readonly PipeReader _input;
    private readonly PipeWriter _output;
    private readonly HpackDecoder _decoder = new();
    private readonly Lock _writeLock = new();
    private ArrayBufferWriter<byte> _pending = new(4096);
    private ArrayBufferWriter<byte> _sending = new(4096);
    private bool _flushing;
    private volatile bool _closing;
    private long _sendWindow = Http2.DefaultWindow;
    private long _connectionCredit;

    // A header block being assembled from HEADERS and CONTINUATION frames.
    private ArrayBufferWriter<byte>? _headerBlock;
    private int _headerStream;
    private bool _headerEndStream;

    protected RelayConnection(PipeReader input, PipeWriter output)
    {
        _input = input;
        _output = output;
    }

    /// <summary>The peer's SETTINGS_MAX_FRAME_SIZE: no frame sent may be longer.</summary>
    public int PeerMaxFrameSize { get; private set; } = Http2.DefaultMaxFrameSize;

    /// <summary>The peer's SETTINGS_INITIAL_WINDOW_SIZE: every new stream's send window.</summary>
    public int PeerInitialWindow { get; private set; } = Http2.DefaultWindow;

    /// <summary>The peer's SETTINGS_MAX_CONCURRENT_STREAMS; 100 (the RFC's recommended floor) until its SETTINGS arrive.</summary>
    public int PeerMaxConcurrentStreams { get; private set; } = 100;

    public bool IsClosed => _closing;

    /// <summary>The relay streams open here, by this connection's stream id; guarded by <see cref="TableLock"/>.</summary>
    protected Dictionary<int, RelayStream> Streams { get; } = [];

    /// <summary>Guards <see cref="Streams"/>; never held while a stream's lock is taken.</summary>
    protected Lock TableLock { get; } = new();

    protected RelayStream? Find(int streamId)
    {
        lock (TableLock)
        {
            return Streams.GetValueOrDefault(streamId);
        }
    }

    protected List<RelayStream> Snapshot()
    {
        lock (TableLock)
        {
            return [.. Streams.Values];
        }
    }

    /// <summary>Reads and dispatches frames until the peer goes away or the connection fails.</summary>
    public async Task RunAsync()
    {
        Exception? failure = null;
        try
        {
            await StartAsync().ConfigureAwait(false);
            while (true)
            {
                var result = await _input.ReadAsync().ConfigureAwait(false);
                var buffer = result.Buffer;
                var outer = t_batch;
                var batch = outer ?? [];
                t_batch = batch;
                try
                {
                    while (TryReadFrame(ref buffer))
                    {
                    }
                }
                finally
                {
                    _input.AdvanceTo(buffer.Start, buffer.End);
                    t_batch = outer;
                    if (outer is null)
                    {
                        foreach (var connection in batch)
                        {
                            connection.Flush();
                        }
                    }
                }

                if (result.IsCompleted || result.IsCanceled)
                {
                    break;
                }
            }
        }
        catch (Http2ProtocolException e)
        {
            failure = e;
            OnProtocolError(e.Message);
            WriteGoAway(LastPeerStreamId, e.Code);
            Flush();
        }
        catch (HpackException e)
        {
            failure = e;
            OnProtocolError(e.Message);
            WriteGoAway(LastPeerStreamId, Http2.Error.CompressionError);
            Flush();
        }
        catch (OperationCanceledException)
        {
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or ObjectDisposedException or InvalidOperationException)
        {
            failure = e;
        }
        finally
        {
            Close();
            await _input.CompleteAsync().ConfigureAwait(false);
            OnClosed(failure);
        }
    }

    /// <summary>Sends what a connection starts with (preface and SETTINGS).</summary>
    protected abstract ValueTask StartAsync();

    protected abstract void OnHeaders(int streamId, List<HeaderField> fields, bool endStream);

    /// <summary>
    /// DATA for a stream; true when a stream took the bytes, and with them the duty to return their
    /// connection-level credit (<see cref="ReturnConnectionCredit"/>) once they have moved on.
    /// </summary>
    protected abstract bool OnData(int streamId, ReadOnlySpan<byte> data, bool endStream);

    protected abstract void OnReset(int streamId, int code);

    protected abstract void OnStreamWindowUpdate(int streamId, int increment);

    /// <summary>More connection-level window, or a new initial window for every stream: held bytes may go now.</summary>
    protected abstract void OnWindowOpened();

    protected abstract void OnGoAway(int lastStreamId, int code);

    protected abstract void OnClosed(Exception? failure);

    /// <summary>The last stream the peer opened that the relay took (named by GOAWAY); 0 where the peer opens none.</summary>
    protected virtual int LastPeerStreamId => 0;

    /// <summary>The peer broke the protocol; the connection goes away with GOAWAY.</summary>
    protected abstract void OnProtocolError(string detail);

    /// <summary>
    /// Stops reading; what is already buffered is still sent, then the output completes. The read
    /// loop ends and <see cref="OnClosed"/> runs.
    /// </summary>
    public void Close()
    {
        bool flush;
        lock (_writeLock)
        {
            if (_closing)
            {
                return;
            }

            _closing = true;
            flush = !_flushing;
            _flushing = true;
        }

        // Off this thread: the read loop may end inline, and its handlers take stream locks.
        ThreadPool.UnsafeQueueUserWorkItem(static input => CancelRead(input), _input, preferLocal: false);
        if (flush)
        {
            _ = FlushLoopAsync();
        }
    }

    // ---- writing ----

    /// <summary>Sends the SETTINGS the relay starts with, and opens the connection window.</summary>
    protected void WriteSettings(bool enablePush, int maxConcurrentStreams)
    {
        lock (_writeLock)
        {
            var entries = maxConcurrentStreams > 0 ? 3 : 2;
            var span = _pending.GetSpan(Http2.FrameHeaderLength + (entries * 6) + Http2.FrameHeaderLength + 4);
            Http2.WriteFrameHeader(span, entries * 6, Http2.Type.Settings, 0, 0);
            var at = Http2.FrameHeaderLength;
            at = WriteSetting(span, at, Http2.Setting.InitialWindowSize, StreamReceiveWindow);
            at = WriteSetting(span, at, Http2.Setting.EnablePush, enablePush ? 1u : 0u);
            if (maxConcurrentStreams > 0)
            {
                at = WriteSetting(span, at, Http2.Setting.MaxConcurrentStreams, (uint)maxConcurrentStreams);
            }

            Http2.WriteFrameHeader(span[at..], 4, Http2.Type.WindowUpdate, 0, 0);
            BinaryPrimitives.WriteInt32BigEndian(span[(at + Http2.FrameHeaderLength)..], ConnectionReceiveWindow - Http2.DefaultWindow);
            _pending.Advance(at + Http2.FrameHeaderLength + 4);
        }

        MarkDirty();

        static int WriteSetting(Span<byte> span, int at, ushort id, uint value)
        {
            BinaryPrimitives.WriteUInt16BigEndian(span[at..], id);
            BinaryPrimitives.WriteUInt32BigEndian(span[(at + 2)..], value);
            return at + 6;
        }
    }

    protected void WriteRaw(ReadOnlySpan<byte> bytes)
    {
        lock (_writeLock)
        {
            bytes.CopyTo(_pending.GetSpan(bytes.Length));
            _pending.Advance(bytes.Length);
        }

        MarkDirty();
    }

    /// <summary>
    /// Sends as much of <paramref name="data"/> as the stream's and the connection's send windows
    /// allow, in frames no longer than the peer accepts; returns how many bytes went. END_STREAM is
    /// set only when all of it went. A stream's window is the peer's initial window plus
    /// <paramref name="windowDelta"/> (its WINDOW_UPDATEs less what was sent), so a SETTINGS change
    /// applies to every stream at once, read under the same lock.
    /// </summary>
    public int WriteData(int streamId, ref long windowDelta, ReadOnlySpan<byte> data, bool endStream)
    {
        int sent;
        lock (_writeLock)
        {
            if (IsClosed)
            {
                return 0;
            }

            var streamWindow = PeerInitialWindow + windowDelta;

            var allowed = (int)Math.Min(data.Length, Math.Max(0, Math.Min(streamWindow, _sendWindow)));
            sent = 0;
            if (allowed == 0 && data.Length > 0)
            {
                return 0;
            }
            do
            {
                var chunk = Math.Min(allowed - sent, PeerMaxFrameSize);
                var last = sent + chunk == data.Length;
                var span = _pending.GetSpan(Http2.FrameHeaderLength + chunk);
                Http2.WriteFrameHeader(span, chunk, Http2.Type.Data, last && endStream ? Http2.Flags.EndStream : (byte)0, streamId);
                data.Slice(sent, chunk).CopyTo(span[Http2.FrameHeaderLength..]);
                _pending.Advance(Http2.FrameHeaderLength + chunk);
                sent += chunk;
            }
            while (sent < allowed);

            windowDelta -= sent;
            _sendWindow -= sent;
        }

        MarkDirty();
        return sent;
    }

    /// <summary>Sends a header block, split into CONTINUATION frames when it is longer than a frame.</summary>
    public void WriteHeaders(int streamId, List<HeaderField> fields, bool endStream)
    {
        lock (_writeLock)
        {
            WriteHeadersLocked(streamId, fields, endStream);
        }

        MarkDirty();
    }

    /// <summary>Picks the next stream id and sends the stream's HEADERS under one lock, so ids go out in order.</summary>
    protected int WriteNewStreamHeaders(ref int nextStreamId, List<HeaderField> fields, bool endStream, Func<int, bool> register)
    {
        int id;
        lock (_writeLock)
        {
            id = nextStreamId;
            nextStreamId += 2;
            if (IsClosed || !register(id))
            {
                return -1;
            }

            WriteHeadersLocked(id, fields, endStream);
        }

        MarkDirty();
        return id;
    }

    private void WriteHeadersLocked(int streamId, List<HeaderField> fields, bool endStream)
    {
        if (IsClosed)
        {
            return;
        }

        var block = new ArrayBufferWriter<byte>(256);
        foreach (var field in fields)
        {
            HpackEncoder.Write(block, field.Name, field.Value);
        }

        var bytes = block.WrittenSpan;
        var first = true;
        do
        {
            var chunk = Math.Min(bytes.Length, PeerMaxFrameSize);
            var last = chunk == bytes.Length;
            var flags = (byte)((last ? Http2.Flags.EndHeaders : 0) | (first && endStream ? Http2.Flags.EndStream : 0));
            var span = _pending.GetSpan(Http2.FrameHeaderLength + chunk);
            Http2.WriteFrameHeader(span, chunk, first ? Http2.Type.Headers : Http2.Type.Continuation, flags, streamId);
            bytes[..chunk].CopyTo(span[Http2.FrameHeaderLength..]);
            _pending.Advance(Http2.FrameHeaderLength + chunk);
            bytes = bytes[chunk..];
            first = false;
        }
        while (bytes.Length > 0);
    }

    public void WriteReset(int streamId, int code) => WriteControl(Http2.Type.RstStream, 0, streamId, code);

    /// <summary>Gives a peer back <paramref name="increment"/> bytes of window on a stream.</summary>
    public void WriteWindowUpdate(int streamId, int increment)
    {
        if (increment > 0)
        {
            WriteControl(Http2.Type.WindowUpdate, 0, streamId, increment);
        }
    }

    public void WriteGoAway(int lastStreamId, int code)
    {
        lock (_writeLock)
        {
            if (IsClosed)
            {
                return;
            }

            var span = _pending.GetSpan(Http2.FrameHeaderLength + 8);
            Http2.WriteFrameHeader(span, 8, Http2.Type.GoAway, 0, 0);
            BinaryPrimitives.WriteInt32BigEndian(span[Http2.FrameHeaderLength..], lastStreamId);
            BinaryPrimitives.WriteInt32BigEndian(span[(Http2.FrameHeaderLength + 4)..], code);
            _pending.Advance(Http2.FrameHeaderLength + 8);
        }

        MarkDirty();
    }

    private void WriteControl(byte type, byte flags, int streamId, int value)
    {
        lock (_writeLock)
        {
            if (IsClosed)
            {
                return;
            }

            var span = _pending.GetSpan(Http2.FrameHeaderLength + 4);
            Http2.WriteFrameHeader(span, 4, type, flags, streamId);
            BinaryPrimitives.WriteInt32BigEndian(span[Http2.FrameHeaderLength..], value);
            _pending.Advance(Http2.FrameHeaderLength + 4);
        }

        MarkDirty();
    }

    /// <summary>Counts bytes done with toward connection-level credit, given back to the peer a quarter window at a time.</summary>
    public void ReturnConnectionCredit(long bytes)
    {
        if (bytes > 0 && Interlocked.Add(ref _connectionCredit, bytes) >= ConnectionReceiveWindow / 4)
        {
            var credit = Interlocked.Exchange(ref _connectionCredit, 0);
            WriteWindowUpdate(0, (int)credit);
        }
    }

    /// <summary>Within a read batch the flush waits for the batch's end; elsewhere it happens now.</summary>
    private void MarkDirty()
    {
        var batch = t_batch;
        if (batch is null)
        {
            Flush();
        }
        else if (!batch.Contains(this))
        {
            batch.Add(this);
        }
    }

    /// <summary>Starts sending what is buffered unless a send is under way (which will take it).</summary>
    public void Flush()
    {
        lock (_writeLock)
        {
            if (_flushing || _pending.WrittenCount == 0)
            {
                return;
            }

            _flushing = true;
        }

        _ = FlushLoopAsync();
    }

    private async Task FlushLoopAsync()
    {
        try
        {
            while (true)
            {
                ArrayBufferWriter<byte> batch;
                lock (_writeLock)
                {
                    if (_pending.WrittenCount == 0)
                    {
                        if (!IsClosed)
                        {
                            _flushing = false;
                            return;
                        }

                        batch = null!; // closed and drained: complete the output; _flushing stays set
                    }
                    else
                    {
                        batch = _pending;
                        _pending = _sending;
                        _sending = batch;
                    }
                }

                if (batch is null)
                {
                    await _output.CompleteAsync().ConfigureAwait(false);
                    return;
                }

                _output.Write(batch.WrittenSpan);
                batch.ResetWrittenCount();
                var result = await _output.FlushAsync().ConfigureAwait(false);
                if (result.IsCompleted || result.IsCanceled)
                {
                    MarkClosing();
                }
            }
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or ObjectDisposedException or InvalidOperationException or OperationCanceledException)
        {
            MarkClosing();
            await _output.CompleteAsync(e).ConfigureAwait(false);
        }
    }

    private static void CancelRead(PipeReader input)
    {
        try
        {
            input.CancelPendingRead();
        }
        catch (InvalidOperationException)
        {
            // the read loop already ended and completed the reader
        }
    }

    /// <summary>From the flush loop, which keeps <c>_flushing</c> set: no other flush starts.</summary>
    private void MarkClosing()
    {
        _closing = true;
        CancelRead(_input);
    }

    // ---- reading ----

    private bool TryReadFrame(ref ReadOnlySequence<byte> buffer)
    {
        if (buffer.Length < Http2.FrameHeaderLength)
        {
            return false;
        }

        Span<byte> header = stackalloc byte[Http2.FrameHeaderLength];
        buffer.Slice(0, Http2.FrameHeaderLength).CopyTo(header);
        var length = (header[0] << 16) | (header[1] << 8) | header[2];
        if (length > Http2.DefaultMaxFrameSize)
        {
            throw new Http2ProtocolException(Http2.Error.FrameSizeError, $"a frame of {length} bytes is longer than the {Http2.DefaultMaxFrameSize} advertised");
        }

        if (buffer.Length < Http2.FrameHeaderLength + length)
        {
            return false;
        }

        var type = header[3];
        var flags = header[4];
        var streamId = BinaryPrimitives.ReadInt32BigEndian(header[5..]) & int.MaxValue;
        var payloadSequence = buffer.Slice(Http2.FrameHeaderLength, length);
        byte[]? rented = null;
        ReadOnlySpan<byte> payload;
        if (payloadSequence.IsSingleSegment)
        {
            payload = payloadSequence.FirstSpan;
        }
        else
        {
            rented = ArrayPool<byte>.Shared.Rent(length);
            payloadSequence.CopyTo(rented);
            payload = rented.AsSpan(0, length);
        }

        try
        {
            HandleFrame(type, flags, streamId, payload);
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }

        buffer = buffer.Slice(Http2.FrameHeaderLength + length);
        return true;
    }

    private void HandleFrame(byte type, byte flags, int streamId, ReadOnlySpan<byte> payload)
    {
        if (_headerBlock is not null && type != Http2.Type.Continuation)
        {
            throw new Http2ProtocolException(Http2.Error.ProtocolError, "a header block was interrupted by another frame");
        }

        switch (type)
        {
            case Http2.Type.Data:
                {
                    var data = Unpad(flags, payload);
                    var held = OnData(streamId, data, (flags & Http2.Flags.EndStream) != 0);

                    // Padding, and bytes no stream took, are credited now; the rest as they move on.
                    ReturnConnectionCredit(held ? payload.Length - data.Length : payload.Length);
                    break;
                }

            case Http2.Type.Headers:
                {
                    var block = Unpad(flags, payload);
                    if ((flags & Http2.Flags.Priority) != 0)
                    {
                        block = block.Length >= 5 ? block[5..] : throw new Http2ProtocolException(Http2.Error.FrameSizeError, "a HEADERS frame too short for its priority fields");
                    }

                    var endStream = (flags & Http2.Flags.EndStream) != 0;
                    if ((flags & Http2.Flags.EndHeaders) != 0)
                    {
                        DecodeAndDispatch(streamId, block, endStream);
                    }
                    else
                    {
                        _headerBlock = new ArrayBufferWriter<byte>(Math.Max(256, block.Length * 2));
                        _headerBlock.Write(block);
                        _headerStream = streamId;
                        _headerEndStream = endStream;
                    }

                    break;
                }

            case Http2.Type.Continuation:
                {
                    if (_headerBlock is null || streamId != _headerStream)
                    {
                        throw new Http2ProtocolException(Http2.Error.ProtocolError, "a CONTINUATION frame without a header block to continue");
                    }

                    _headerBlock.Write(payload);
                    if (_headerBlock.WrittenCount > 256 * 1024)
                    {
                        throw new Http2ProtocolException(Http2.Error.ProtocolError, "a header block longer than 256 KiB");
                    }

                    if ((flags & Http2.Flags.EndHeaders) != 0)
                    {
                        var block = _headerBlock;
                        _headerBlock = null;
                        DecodeAndDispatch(_headerStream, block.WrittenSpan, _headerEndStream);
                    }

                    break;
                }

            case Http2.Type.RstStream:
                OnReset(streamId, payload.Length >= 4 ? BinaryPrimitives.ReadInt32BigEndian(payload) : Http2.Error.ProtocolError);
                break;
            case Http2.Type.Settings:
                if ((flags & Http2.Flags.Ack) == 0)
                {
                    ApplySettings(payload);
                }

                break;
            case Http2.Type.Ping:
                if ((flags & Http2.Flags.Ack) == 0 && payload.Length == 8)
                {
                    lock (_writeLock)
                    {
                        var span = _pending.GetSpan(Http2.FrameHeaderLength + 8);
                        Http2.WriteFrameHeader(span, 8, Http2.Type.Ping, Http2.Flags.Ack, 0);
                        payload.CopyTo(span[Http2.FrameHeaderLength..]);
                        _pending.Advance(Http2.FrameHeaderLength + 8);
                    }

                    MarkDirty();
                }

                break;
            case Http2.Type.GoAway:
                if (payload.Length >= 8)
                {
                    OnGoAway(BinaryPrimitives.ReadInt32BigEndian(payload) & int.MaxValue, BinaryPrimitives.ReadInt32BigEndian(payload[4..]));
                }

                break;
            case Http2.Type.WindowUpdate:
                {
                    var increment = payload.Length >= 4 ? BinaryPrimitives.ReadInt32BigEndian(payload) & int.MaxValue : 0;
                    if (streamId == 0)
                    {
                        lock (_writeLock)
                        {
                            _sendWindow += increment;
                        }

                        OnWindowOpened();
                    }
                    else
                    {
                        OnStreamWindowUpdate(streamId, increment);
                    }

                    break;
                }

            case Http2.Type.PushPromise:
                throw new Http2ProtocolException(Http2.Error.ProtocolError, "PUSH_PROMISE although push is disabled");
            default:
                break; // PRIORITY and unknown frame types carry nothing the relay acts on
        }
    }

    private void DecodeAndDispatch(int streamId, ReadOnlySpan<byte> block, bool endStream)
    {
        var fields = new List<HeaderField>(12);
        _decoder.Decode(block, fields);
        OnHeaders(streamId, fields, endStream);
    }

    private void ApplySettings(ReadOnlySpan<byte> payload)
    {
        var windowChanged = false;
        for (var at = 0; at + 6 <= payload.Length; at += 6)
        {
            var id = BinaryPrimitives.ReadUInt16BigEndian(payload[at..]);
            var value = BinaryPrimitives.ReadUInt32BigEndian(payload[(at + 2)..]);
            switch (id)
            {
                case Http2.Setting.InitialWindowSize:
                    if (value > Http2.MaxWindow)
                    {
                        throw new Http2ProtocolException(Http2.Error.FlowControlError, "SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1");
                    }

                    lock (_writeLock)
                    {
                        windowChanged |= PeerInitialWindow != (int)value;
                        PeerInitialWindow = (int)value;
                    }

                    break;
                case Http2.Setting.MaxFrameSize:
                    PeerMaxFrameSize = (int)Math.Clamp(value, Http2.DefaultMaxFrameSize, 16_777_215);
                    break;
                case Http2.Setting.MaxConcurrentStreams:
                    PeerMaxConcurrentStreams = (int)Math.Min(value, int.MaxValue);
                    break;
                default:
                    break; // the relay's encoder keeps no dynamic table, so HEADER_TABLE_SIZE does not matter
            }
        }

        lock (_writeLock)
        {
            var span = _pending.GetSpan(Http2.FrameHeaderLength);
            Http2.WriteFrameHeader(span, 0, Http2.Type.Settings, Http2.Flags.Ack, 0);
            _pending.Advance(Http2.FrameHeaderLength);
        }

        MarkDirty();
        if (windowChanged)
        {
            OnWindowOpened();
        }
    }

    private static ReadOnlySpan<byte> Unpad(byte flags, ReadOnlySpan<byte> payload)
    {
        if ((flags & Http2.Flags.Padded) == 0)
        {
            return payload;
        }

        if (payload.Length < 1 || payload[0] >= payload.Length)
        {
            throw new Http2ProtocolException(Http2.Error.ProtocolError, "padding longer than the frame");
        }

        return payload[1..^payload[0]];
    }
}
