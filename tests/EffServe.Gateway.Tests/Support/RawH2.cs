namespace EffServe.Gateway.Tests.Support;

/// <summary>An HTTP/2 client written frame by frame, for requests no client library sends.</summary>
internal sealed class RawH2 : IAsyncDisposable
{
    private readonly System.Net.Sockets.TcpClient _tcp;
    private readonly System.Net.Sockets.NetworkStream _stream;
    private readonly HpackDecoder _decoder = new();

    private RawH2(System.Net.Sockets.TcpClient tcp)
    {
        _tcp = tcp;
        _stream = tcp.GetStream();
    }

    /// <summary>Connects; with <paramref name="initialWindow"/> 0 the client takes no response bytes at all.</summary>
    public static async Task<RawH2> ConnectAsync(Uri address, int? initialWindow = null)
    {
        var tcp = new System.Net.Sockets.TcpClient();
        await tcp.ConnectAsync(address.Host, address.Port, Rpc.Ct);
        var raw = new RawH2(tcp);
        await raw._stream.WriteAsync(Http2.Preface.ToArray(), Rpc.Ct);
        var settings = new byte[initialWindow is null ? 0 : 6];
        if (initialWindow is { } window)
        {
            System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(settings, Http2.Setting.InitialWindowSize);
            System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(settings.AsSpan(2), window);
        }

        await raw.WriteFrameAsync(Http2.Type.Settings, 0, 0, settings);
        return raw;
    }

    /// <summary>Sends one unary call on <paramref name="streamId"/>; returns its grpc-status, "RST n" when the stream was reset, "GOAWAY n" when the connection was ended, "closed" when it closed.</summary>
    public Task<string> CallAsync(int streamId, string method, byte[] body, params (string Name, string Value)[] extra) =>
        CallAsync(streamId, method, body, TimeSpan.Zero, extra);

    /// <summary>As above; with a <paramref name="pause"/>, the body goes in two halves that far apart.</summary>
    public async Task<string> CallAsync(int streamId, string method, byte[] body, TimeSpan pause, params (string Name, string Value)[] extra)
    {
        await SendAsync(streamId, method, body, pause, extra);
        var header = new byte[Http2.FrameHeaderLength];
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Rpc.Ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(10));
        while (true)
        {
            try
            {
                await _stream.ReadExactlyAsync(header, timeout.Token);
            }
            catch (Exception e) when (e is EndOfStreamException or IOException)
            {
                return "closed";
            }

            var length = (header[0] << 16) | (header[1] << 8) | header[2];
            var payload = new byte[length];
            await _stream.ReadExactlyAsync(payload, timeout.Token);
            var id = System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(5)) & int.MaxValue;
            var fields = new List<HeaderField>();
            if (header[3] == Http2.Type.Headers)
            {
                _decoder.Decode(payload, fields); // decoded for every stream: the table is the connection's
            }

            if (header[3] == Http2.Type.GoAway)
            {
                return $"GOAWAY {System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(payload.AsSpan(4))}";
            }

            if (id != streamId)
            {
                continue;
            }

            if (header[3] == Http2.Type.RstStream)
            {
                return $"RST {System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(payload)}";
            }

            if (fields.FirstOrDefault(f => f.Name == "grpc-status") is { Name: not null } status)
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
        var block = new System.Buffers.ArrayBufferWriter<byte>();
        foreach (var (name, value) in new[] { (":method", "POST"), (":scheme", "http"), (":path", RawGrpc.Inference + method), (":authority", "transport-test"), ("content-type", "application/grpc"), ("te", "trailers") }.Concat(extra))
        {
            HpackEncoder.Write(block, name, value);
        }

        var chunks = block.WrittenSpan.ToArray().Chunk(Http2.DefaultMaxFrameSize).ToList();
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

        await WriteFrameAsync(Http2.Type.Data, Http2.Flags.EndStream, streamId, body);
    }

    public async Task WriteFrameAsync(byte type, byte flags, int streamId, byte[] payload)
    {
        var frame = new byte[Http2.FrameHeaderLength + payload.Length];
        Http2.WriteFrameHeader(frame, payload.Length, type, flags, streamId);
        payload.CopyTo(frame, Http2.FrameHeaderLength);
        await _stream.WriteAsync(frame, Rpc.Ct);
    }

    public ValueTask DisposeAsync()
    {
        _tcp.Dispose();
        return ValueTask.CompletedTask;
    }
}
