using System.IO.Pipelines;
using System.Net.Sockets;
using EffServe.Gateway.Routing;

namespace EffServe.Gateway.Relay;

/// <summary>
/// The relay's HTTP/2 client connection to a replica, or to the gateway's own pipeline behind a
/// client connection (<see cref="Destination"/> null): opens streams for relayed calls and hands
/// their responses back.
/// </summary>
internal sealed class UpstreamConnection : RelayConnection
{
    private int _nextStreamId = 1;
    private volatile bool _draining;
    private volatile bool _goAwayError; // the peer ended the connection over a protocol disagreement, not by dying
    private bool _ended; // under the table lock: no stream may be added once the connection's end was announced

    public UpstreamConnection(PipeReader input, PipeWriter output, Destination? destination, ILogger logger)
        : base(input, output)
    {
        Destination = destination;
        Logger = logger;
    }

    private ILogger Logger { get; }

    /// <summary>The replica this connection goes to; null for the gateway's own pipeline.</summary>
    public Destination? Destination { get; }

    /// <summary>Whether another stream may be opened here now.</summary>
    public bool IsReady
    {
        get
        {
            if (IsClosed || _draining || _nextStreamId > int.MaxValue - 16)
            {
                return false;
            }

            lock (TableLock)
            {
                return Streams.Count < PeerMaxConcurrentStreams;
            }
        }
    }

    /// <summary>
    /// Opens a stream for <paramref name="stream"/> and sends its headers; returns the stream id, or
    /// -1 when the connection has ended or is full (the stream must go elsewhere).
    /// </summary>
    public int OpenStream(RelayStream stream, List<HeaderField> headers, bool endStream) =>
        WriteNewStreamHeaders(ref _nextStreamId, headers, endStream, id =>
        {
            lock (TableLock)
            {
                if (_ended || Streams.Count >= PeerMaxConcurrentStreams)
                {
                    return false; // ended, or full: another thread took the last slot since IsReady said yes
                }

                Streams[id] = stream;
                return true;
            }
        });

    /// <summary>No new streams; the connection closes once those open end.</summary>
    public void Drain()
    {
        _draining = true;
        lock (TableLock)
        {
            if (Streams.Count > 0)
            {
                return;
            }
        }

        Close();
    }

    public void Forget(int streamId)
    {
        bool closeNow;
        lock (TableLock)
        {
            Streams.Remove(streamId);
            closeNow = _draining && Streams.Count == 0;
        }

        if (closeNow)
        {
            Close();
        }
    }

    protected override ValueTask StartAsync()
    {
        WriteRaw(Http2.Preface);
        WriteSettings(enablePush: false, maxConcurrentStreams: 0);
        return ValueTask.CompletedTask;
    }

    protected override void OnHeaders(int streamId, List<HeaderField> fields, bool endStream) => Find(streamId)?.OnUpstreamHeaders(this, fields, endStream);

    /// <summary>
    /// A replica's (or the pipeline's) bytes are credited as they are read, whatever the stream does
    /// with them: a client that reads slowly must never shut a connection other clients share. The
    /// stream's own window bounds what it holds.
    /// </summary>
    protected override bool OnData(int streamId, ReadOnlySpan<byte> data, bool endStream)
    {
        _ = Find(streamId)?.OnUpstreamData(this, data, endStream);
        return false;
    }

    protected override void OnReset(int streamId, int code) => Find(streamId)?.OnUpstreamReset(this, code);

    protected override void OnStreamWindowUpdate(int streamId, int increment) => Find(streamId)?.OnUpstreamWindow(this, increment);

    protected override void OnWindowOpened()
    {
        foreach (var stream in Snapshot())
        {
            stream.OnUpstreamWindow(this, 0);
        }
    }

    protected override void OnGoAway(int lastStreamId, int code)
    {
        _draining = true;
        _goAwayError |= code != Http2.Error.NoError;
        List<RelayStream> refused = [];
        lock (TableLock)
        {
            foreach (var (id, stream) in Streams)
            {
                if (id > lastStreamId)
                {
                    refused.Add(stream);
                }
            }
        }

        foreach (var stream in refused)
        {
            stream.OnUpstreamLost(this, transportFailure: false, $"the replica is going away (GOAWAY {code})");
        }

        lock (TableLock)
        {
            if (Streams.Count > 0)
            {
                return;
            }
        }

        Close();
    }

    protected override void OnProtocolError(string detail) =>
        GatewayLog.RelayProtocolError(Logger, Destination is null ? "the gateway's pipeline" : $"replica {Destination.Prefix}", detail);

    protected override void OnClosed(Exception? failure)
    {
        _draining = true;
        List<RelayStream> open;
        lock (TableLock)
        {
            _ended = true;
            open = [.. Streams.Values];
        }

        foreach (var stream in open)
        {
            stream.OnUpstreamLost(this, transportFailure: !_goAwayError, failure?.Message ?? "the connection closed");
        }
    }

}

/// <summary>The relay's connections to one replica: opened on demand, more when one is full.</summary>
internal sealed class UpstreamPool(Destination destination, TimeSpan connectTimeout, ILogger logger)
{
    private readonly Lock _lock = new();
    private readonly List<UpstreamConnection> _connections = [];
    private Task<UpstreamConnection>? _connecting;

    public Destination Destination { get; } = destination;

    public bool TryGetReady(out UpstreamConnection connection)
    {
        lock (_lock)
        {
            foreach (var candidate in _connections)
            {
                if (candidate.IsReady)
                {
                    connection = candidate;
                    return true;
                }
            }
        }

        connection = null!;
        return false;
    }

    /// <summary>A new connection (one connect at a time is shared by every stream waiting for it).</summary>
    public Task<UpstreamConnection> ConnectAsync()
    {
        lock (_lock)
        {
            // A finished attempt (connected, or failed) is never handed out again: whoever asks now
            // found no ready connection, so a fresh one is needed.
            if (_connecting is null || _connecting.IsCompleted)
            {
                _connecting = ConnectCoreAsync();
            }

            return _connecting;
        }
    }

    private async Task<UpstreamConnection> ConnectCoreAsync()
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            using (var timeout = new CancellationTokenSource(connectTimeout))
            {
                await socket.ConnectAsync(Destination.Address.Host, Destination.Address.Port, timeout.Token).ConfigureAwait(false);
            }

            var stream = new NetworkStream(socket, ownsSocket: true);
            var connection = new UpstreamConnection(PipeReader.Create(stream), PipeWriter.Create(stream), Destination, logger);
            lock (_lock)
            {
                _connections.Add(connection);
            }

            _ = RunAsync(connection, stream);
            return connection;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private async Task RunAsync(UpstreamConnection connection, NetworkStream stream)
    {
        try
        {
            await connection.RunAsync().ConfigureAwait(false);
        }
        finally
        {
            lock (_lock)
            {
                _connections.Remove(connection);
            }

            await stream.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Every connection takes no new streams and closes once its open ones end (or at once, <paramref name="now"/>).</summary>
    public void CloseAll(bool now)
    {
        List<UpstreamConnection> all;
        lock (_lock)
        {
            all = [.. _connections];
        }

        foreach (var connection in all)
        {
            if (now)
            {
                connection.Close();
            }
            else
            {
                connection.Drain();
            }
        }
    }
}
