using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net.Sockets;

namespace EffServe.Gateway.Tests.Support;

/// <summary>
/// An HTTP/2 client written frame by frame, for requests no client library sends: any frame in
/// any order (HEADERS without END_HEADERS, CONTINUATION, RST_STREAM, PING, SETTINGS,
/// WINDOW_UPDATE, reused stream ids), written as fast as the socket takes them. Either a call is
/// read inline (<see cref="CallAsync(int, string, byte[], (string Name, string Value)[])"/>), or
/// <see cref="StartReading"/> reads every frame in the background and records what each stream
/// and the connection were told; never both on one connection.
/// </summary>
internal sealed class RawH2 : IAsyncDisposable
{
    private readonly TcpClient _tcp;
    private readonly NetworkStream _stream;
    private readonly HpackDecoder _decoder = new();
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private Task? _reader;

    private RawH2(TcpClient tcp)
    {
        _tcp = tcp;
        _stream = tcp.GetStream();
    }

    /// <summary>grpc-status (as text) per stream, from the background reader.</summary>
    public ConcurrentDictionary<int, string> Statuses { get; } = new();

    /// <summary>grpc-message per stream (percent-decoded), from the background reader.</summary>
    public ConcurrentDictionary<int, string> Messages { get; } = new();

    /// <summary>RST_STREAM error code per stream, from the background reader.</summary>
    public ConcurrentDictionary<int, int> Resets { get; } = new();

    /// <summary>The GOAWAY error code, once the server sent one.</summary>
    public int? GoAwayCode { get; private set; }

    /// <summary>Frames the background reader has seen, by type.</summary>
    public ConcurrentDictionary<byte, int> FramesRead { get; } = new();

    /// <summary>Completes when the connection ends (EOF, reset, or after a GOAWAY the reader saw).</summary>
    public TaskCompletionSource Closed { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Connects and sends the preface and a SETTINGS frame; with <paramref name="initialWindow"/> 0 the client takes no response bytes at all.</summary>
    public static async Task<RawH2> ConnectAsync(Uri address, int? initialWindow = null)
    {
        var tcp = new TcpClient();
        await tcp.ConnectAsync(address.Host, address.Port, Rpc.Ct);
        var raw = new RawH2(tcp);
        await raw._stream.WriteAsync(Http2.Preface.ToArray(), Rpc.Ct);
        await raw.SettingsAsync(initialWindow is { } window ? [(Http2.Setting.InitialWindowSize, window)] : []);
        return raw;
    }

    /// <summary>The request's header block: the gRPC request pseudo-headers and headers for <paramref name="path"/>, then <paramref name="extra"/>.</summary>
    public static byte[] HeaderBlock(string path, params (string Name, string Value)[] extra)
    {
        var block = new ArrayBufferWriter<byte>();
        foreach (var (name, value) in new[] { (":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "transport-test"), ("content-type", "application/grpc"), ("te", "trailers") }.Concat(extra))
        {
            HpackEncoder.Write(block, name, value);
        }

        return block.WrittenSpan.ToArray();
    }

    /// <summary>A method's path: <paramref name="method"/> itself when it starts with '/', else the inference service's method of that name.</summary>
    public static string PathOf(string method) => method.StartsWith('/') ? method : RawGrpc.Inference + method;

    /// <summary>Sends one unary call on <paramref name="streamId"/>; returns its grpc-status, "RST n" when the stream was reset, "GOAWAY n" when the connection was ended, "closed" when it closed.</summary>
    public Task<string> CallAsync(int streamId, string method, byte[] body, params (string Name, string Value)[] extra) =>
        CallAsync(streamId, method, body, TimeSpan.Zero, extra);

    /// <summary>As above; with a <paramref name="pause"/>, the body goes in two halves that far apart.</summary>
    public async Task<string> CallAsync(int streamId, string method, byte[] body, TimeSpan pause, params (string Name, string Value)[] extra)
    {
        try
        {
            await SendAsync(streamId, method, body, pause, extra);
        }
        catch (IOException)
        {
            // The server ended the connection while the call was still being written (a header
            // block it refused); what it sent before it closed says how.
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Rpc.Ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(10));
        while (true)
        {
            var frame = await ReadFrameAsync(timeout.Token);
            if (frame is not { } f)
            {
                return "closed";
            }

            var fields = new List<HeaderField>();
            if (f.Type == Http2.Type.Headers)
            {
                _decoder.Decode(f.Payload, fields); // decoded for every stream: the table is the connection's
            }

            if (f.Type == Http2.Type.GoAway)
            {
                return $"GOAWAY {BinaryPrimitives.ReadInt32BigEndian(f.Payload.AsSpan(4))}";
            }

            if (f.StreamId != streamId)
            {
                continue;
            }

            if (f.Type == Http2.Type.RstStream)
            {
                return $"RST {BinaryPrimitives.ReadInt32BigEndian(f.Payload)}";
            }

            if (fields.FirstOrDefault(h => h.Name == "grpc-status") is { Name: not null } status)
            {
                return status.Value;
            }
        }
    }

    /// <summary>
    /// Sends one unary call and reads nothing back: the header block (in CONTINUATION frames past
    /// one frame's size), then the body, in two halves <paramref name="pause"/> apart when one is given.
    /// </summary>
    public async Task SendAsync(int streamId, string method, byte[] body, TimeSpan pause = default, params (string Name, string Value)[] extra)
    {
        var chunks = HeaderBlock(PathOf(method), extra).Chunk(Http2.DefaultMaxFrameSize).ToList();
        for (var i = 0; i < chunks.Count; i++)
        {
            await WriteFrameAsync(i == 0 ? Http2.Type.Headers : Http2.Type.Continuation, i == chunks.Count - 1 ? Http2.Flags.EndHeaders : (byte)0, streamId, chunks[i]);
        }

        if (pause > TimeSpan.Zero)
        {
            await WriteFrameAsync(Http2.Type.Data, 0, streamId, body[..(body.Length / 2)]);
            await Task.Delay(pause, Rpc.Ct);
            body = body[(body.Length / 2)..];
        }

        await WriteDataAsync(streamId, body, endStream: true);
    }

    /// <summary>One HEADERS frame carrying the whole header block of a call to <paramref name="method"/> (the block must fit one frame).</summary>
    public Task HeadersAsync(int streamId, string method, bool endHeaders = true, bool endStream = false, params (string Name, string Value)[] extra) =>
        WriteFrameAsync(Http2.Type.Headers, (byte)((endHeaders ? Http2.Flags.EndHeaders : 0) | (endStream ? Http2.Flags.EndStream : 0)), streamId, HeaderBlock(PathOf(method), extra));

    /// <summary>DATA frames of at most the default frame size carrying <paramref name="data"/>, the last with END_STREAM when asked.</summary>
    public async Task WriteDataAsync(int streamId, byte[] data, bool endStream)
    {
        if (data.Length == 0)
        {
            await WriteFrameAsync(Http2.Type.Data, endStream ? Http2.Flags.EndStream : (byte)0, streamId, []);
            return;
        }

        var chunks = data.Chunk(Http2.DefaultMaxFrameSize).ToList();
        for (var i = 0; i < chunks.Count; i++)
        {
            await WriteFrameAsync(Http2.Type.Data, endStream && i == chunks.Count - 1 ? Http2.Flags.EndStream : (byte)0, streamId, chunks[i]);
        }
    }

    public Task ContinuationAsync(int streamId, byte[] payload, bool endHeaders) =>
        WriteFrameAsync(Http2.Type.Continuation, endHeaders ? Http2.Flags.EndHeaders : (byte)0, streamId, payload);

    public Task RstStreamAsync(int streamId, int errorCode) => WriteFrameAsync(Http2.Type.RstStream, 0, streamId, Int32(errorCode));

    public Task WindowUpdateAsync(int streamId, int increment) => WriteFrameAsync(Http2.Type.WindowUpdate, 0, streamId, Int32(increment));

    public Task PingAsync(long opaque = 0, bool ack = false) => WriteFrameAsync(Http2.Type.Ping, ack ? Http2.Flags.Ack : (byte)0, 0, PingPayload(opaque));

    public Task SettingsAsync(params (ushort Id, int Value)[] settings) => WriteFrameAsync(Http2.Type.Settings, 0, 0, SettingsPayload(settings));

    /// <summary>A whole frame (header and payload) as bytes, for floods written many frames at a time.</summary>
    public static byte[] Frame(byte type, byte flags, int streamId, ReadOnlySpan<byte> payload)
    {
        var frame = new byte[Http2.FrameHeaderLength + payload.Length];
        Http2.WriteFrameHeader(frame, payload.Length, type, flags, streamId);
        payload.CopyTo(frame.AsSpan(Http2.FrameHeaderLength));
        return frame;
    }

    public static byte[] PingPayload(long opaque)
    {
        var payload = new byte[8];
        BinaryPrimitives.WriteInt64BigEndian(payload, opaque);
        return payload;
    }

    public static byte[] SettingsPayload(params (ushort Id, int Value)[] settings)
    {
        var payload = new byte[6 * settings.Length];
        for (var i = 0; i < settings.Length; i++)
        {
            BinaryPrimitives.WriteUInt16BigEndian(payload.AsSpan(6 * i), settings[i].Id);
            BinaryPrimitives.WriteInt32BigEndian(payload.AsSpan((6 * i) + 2), settings[i].Value);
        }

        return payload;
    }

    private static byte[] Int32(int value)
    {
        var payload = new byte[4];
        BinaryPrimitives.WriteInt32BigEndian(payload, value);
        return payload;
    }

    public Task WriteFrameAsync(byte type, byte flags, int streamId, byte[] payload) => WriteRawAsync(Frame(type, flags, streamId, payload));

    /// <summary>Writes bytes as they are (whole frames, usually), one writer at a time.</summary>
    public async Task WriteRawAsync(ReadOnlyMemory<byte> bytes, CancellationToken cancellationToken = default)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(Rpc.Ct, cancellationToken);
        await _writeLock.WaitAsync(linked.Token);
        try
        {
            await _stream.WriteAsync(bytes, linked.Token);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <summary>
    /// Writes <paramref name="bytes"/> unless the server stops taking them: false when the write did
    /// not finish within <paramref name="patience"/> (the server reads no more: backpressure) or
    /// failed (the connection is gone). A connection whose write was given up on is only fit to close.
    /// </summary>
    public async Task<bool> TryWriteRawAsync(ReadOnlyMemory<byte> bytes, TimeSpan patience)
    {
        using var timeout = new CancellationTokenSource(patience);
        try
        {
            await WriteRawAsync(bytes, timeout.Token);
            return true;
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException || (e is OperationCanceledException && !Rpc.Ct.IsCancellationRequested))
        {
            return false;
        }
    }

    /// <summary>
    /// Reads every frame from now on in the background: statuses, resets and GOAWAY are recorded,
    /// the server's SETTINGS acknowledged (unless <paramref name="acknowledgeSettings"/> is false: an
    /// acknowledgement would break a header block the test holds open), and, when
    /// <paramref name="credit"/>, every DATA frame's bytes given back (stream and connection) so
    /// that responses never stall on this client.
    /// </summary>
    public void StartReading(bool credit = true, bool acknowledgeSettings = true)
    {
        _reader ??= Task.Run(async () =>
        {
            try
            {
                while (await ReadFrameAsync(Rpc.Ct) is { } frame)
                {
                    FramesRead.AddOrUpdate(frame.Type, 1, (_, n) => n + 1);
                    switch (frame.Type)
                    {
                        case Http2.Type.Headers:
                            var fields = new List<HeaderField>();
                            _decoder.Decode(frame.Payload, fields);
                            foreach (var field in fields)
                            {
                                if (field.Name == "grpc-status")
                                {
                                    Statuses[frame.StreamId] = field.Value;
                                }
                                else if (field.Name == "grpc-message")
                                {
                                    Messages[frame.StreamId] = Uri.UnescapeDataString(field.Value);
                                }
                            }

                            break;
                        case Http2.Type.RstStream:
                            Resets[frame.StreamId] = BinaryPrimitives.ReadInt32BigEndian(frame.Payload);
                            break;
                        case Http2.Type.GoAway:
                            GoAwayCode = BinaryPrimitives.ReadInt32BigEndian(frame.Payload.AsSpan(4));
                            break;
                        case Http2.Type.Settings when acknowledgeSettings && (frame.Flags & Http2.Flags.Ack) == 0:
                            _ = TryWriteRawAsync(Frame(Http2.Type.Settings, Http2.Flags.Ack, 0, []), TimeSpan.FromSeconds(5));
                            break;
                        case Http2.Type.Data when credit && frame.Payload.Length > 0:
                            _ = TryWriteRawAsync(Frame(Http2.Type.WindowUpdate, 0, 0, Int32(frame.Payload.Length)).Concat(Frame(Http2.Type.WindowUpdate, 0, frame.StreamId, Int32(frame.Payload.Length))).ToArray(), TimeSpan.FromSeconds(5));
                            break;
                    }
                }
            }
            catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or OperationCanceledException or HpackException)
            {
                // the connection is over
            }
            finally
            {
                Closed.TrySetResult();
            }
        });
    }

    /// <summary>What the background reader learnt of <paramref name="streamId"/>: "grpc-status n", "RST n", "GOAWAY n" or "closed"; null while nothing.</summary>
    public string? OutcomeOf(int streamId) =>
        Statuses.TryGetValue(streamId, out var status) ? $"grpc-status {status}"
        : Resets.TryGetValue(streamId, out var reset) ? $"RST {reset}"
        : GoAwayCode is { } code ? $"GOAWAY {code}"
        : Closed.Task.IsCompleted ? "closed"
        : null;

    /// <summary>Waits, at most <paramref name="patience"/>, until the background reader learnt how <paramref name="streamId"/> ended; "hang" when it did not.</summary>
    public async Task<string> OutcomeAsync(int streamId, TimeSpan patience)
    {
        var giveUp = TimeProvider.System.GetTimestamp() + (long)(patience.TotalSeconds * TimeProvider.System.TimestampFrequency);
        while (TimeProvider.System.GetTimestamp() < giveUp)
        {
            if (OutcomeOf(streamId) is { } outcome)
            {
                return outcome;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(20), Rpc.Ct);
        }

        return OutcomeOf(streamId) ?? "hang";
    }

    /// <summary>Waits, at most <paramref name="patience"/>, for the connection to end; "GOAWAY n", "closed", or "open" when it did not.</summary>
    public async Task<string> EndAsync(TimeSpan patience)
    {
        await Task.WhenAny(Closed.Task, Task.Delay(patience, Rpc.Ct));
        return GoAwayCode is { } code ? $"GOAWAY {code}" : Closed.Task.IsCompleted ? "closed" : "open";
    }

    private async Task<(byte Type, byte Flags, int StreamId, byte[] Payload)?> ReadFrameAsync(CancellationToken cancellationToken)
    {
        var header = new byte[Http2.FrameHeaderLength];
        try
        {
            await _stream.ReadExactlyAsync(header, cancellationToken);
            var length = (header[0] << 16) | (header[1] << 8) | header[2];
            var payload = new byte[length];
            await _stream.ReadExactlyAsync(payload, cancellationToken);
            return (header[3], header[4], BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(5)) & int.MaxValue, payload);
        }
        catch (Exception e) when (e is EndOfStreamException or IOException or SocketException)
        {
            return null;
        }
    }

    public async ValueTask DisposeAsync()
    {
        _tcp.Dispose();
        if (_reader is not null)
        {
            await _reader;
        }

        _writeLock.Dispose();
    }
}
