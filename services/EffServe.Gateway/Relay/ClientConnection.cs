using System.IO.Pipelines;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;

namespace EffServe.Gateway.Relay;

/// <summary>
/// A client's h2c connection to the gateway, served by the relay: each stream goes straight to a
/// replica when the relay can route it, else to the gateway's own ASP.NET Core pipeline, which
/// Kestrel runs for this connection over an in-memory pipe (<see cref="Pipeline"/>).
/// </summary>
internal sealed class ClientConnection : RelayConnection
{
    /// <summary>The streams a client may have open at once (Kestrel's default).</summary>
    public const int MaxConcurrentStreams = 100;

    private readonly FrameRelay _relay;
    private readonly ConnectionContext _context;
    private readonly ConnectionDelegate _next;
    private readonly Lock _pipelineLock = new();
    private UpstreamConnection? _pipeline;
    private readonly List<PipelineContext> _live = [];
    private bool _heartbeatForwarded;
    private Task _pipelineDone = Task.CompletedTask;
    private int _lastStreamId; // the last stream accepted (what GOAWAY names)
    private int _highestStreamId; // the last stream the client opened, accepted or not
    private volatile bool _draining;
    private long _idleSince = System.Diagnostics.Stopwatch.GetTimestamp(); // when the last stream ended; under the table lock

    public ClientConnection(FrameRelay relay, ConnectionContext context, ConnectionDelegate next)
        : base(context.Transport.Input, context.Transport.Output)
    {
        _relay = relay;
        _context = context;
        _next = next;
    }

    /// <summary>Ends when the gateway's pipeline for this connection (if it was started) has stopped.</summary>
    public Task PipelineDone => _pipelineDone;

    /// <summary>
    /// The gateway's own pipeline for this connection, started on first use: Kestrel's HTTP/2 server
    /// on an in-memory pipe, with every middleware, service and forwarder the gateway maps.
    /// </summary>
    public UpstreamConnection? Pipeline()
    {
        lock (_pipelineLock)
        {
            if (_pipeline is { IsReady: true })
            {
                return _pipeline;
            }

            if (IsClosed)
            {
                return null;
            }

            // None yet, or Kestrel's side ended or is ending (its idle limit, an error of this
            // client's): Kestrel serves this connection afresh over a new pipe, with a context of
            // its own, while what the old one still carries finishes there.
            if (!_heartbeatForwarded)
            {
                _heartbeatForwarded = true;
                _context.Features.Get<IConnectionHeartbeatFeature>()?.OnHeartbeat(static c => ((ClientConnection)c).Heartbeat(), this);
            }

            _relay.PipelineStarted();
            var toPipeline = new Pipe();
            var fromPipeline = new Pipe();
            var upstream = new UpstreamConnection(fromPipeline.Reader, toPipeline.Writer, destination: null, _relay.Logger);
            var context = new PipelineContext(_context, new DuplexPipe(toPipeline.Reader, fromPipeline.Writer), upstream);
            _live.Add(context);
            var run = upstream.RunAsync();
            var served = Task.Run(async () =>
            {
                try
                {
                    await _next(context).ConfigureAwait(false);
                }
                finally
                {
                    context.End();
                    lock (_pipelineLock)
                    {
                        _live.Remove(context);
                    }

                    await fromPipeline.Writer.CompleteAsync().ConfigureAwait(false);
                    await toPipeline.Reader.CompleteAsync().ConfigureAwait(false);
                }
            });
            _pipelineDone = Task.WhenAll(_pipelineDone, run, served);
            _pipeline = upstream;
            return upstream;
        }
    }

    /// <summary>The client connection's heartbeat, passed on to the pipelines that live.</summary>
    private void Heartbeat()
    {
        PipelineContext[] live;
        lock (_pipelineLock)
        {
            live = [.. _live];
        }

        foreach (var context in live)
        {
            context.Beat();
        }
    }

    /// <summary>Housekeeping, once a second: streams slow to send their first message, and the idle limit.</summary>
    public void Tick(long now)
    {
        bool idle;
        lock (TableLock)
        {
            idle = Streams.Count == 0 && !_draining && System.Diagnostics.Stopwatch.GetElapsedTime(_idleSince, now) > FrameRelay.IdleTimeout;
        }

        if (idle)
        {
            Drain();
            return;
        }

        foreach (var stream in Snapshot())
        {
            stream.Tick(now);
        }
    }

    /// <summary>The gateway is stopping: no new streams; the connection closes when the open ones end.</summary>
    public void Drain()
    {
        int last;
        lock (TableLock)
        {
            // With the table's lock: a stream is either counted in GOAWAY's last id or refused.
            _draining = true;
            last = _lastStreamId;
        }

        WriteGoAway(last, Http2.Error.NoError);
        CloseIfIdle();
    }

    public void Forget(int streamId)
    {
        lock (TableLock)
        {
            if (Streams.Remove(streamId) && Streams.Count == 0)
            {
                _idleSince = System.Diagnostics.Stopwatch.GetTimestamp();
            }
        }

        if (_draining)
        {
            CloseIfIdle();
        }
    }

    protected override ValueTask StartAsync()
    {
        WriteSettings(enablePush: false, maxConcurrentStreams: MaxConcurrentStreams);
        return ValueTask.CompletedTask;
    }

    protected override void OnHeaders(int streamId, List<HeaderField> fields, bool endStream)
    {
        RelayStream? stream;
        lock (TableLock)
        {
            stream = Streams.GetValueOrDefault(streamId);
        }

        if (stream is not null)
        {
            stream.OnClientTrailers(fields, endStream);
            return;
        }

        if ((streamId & 1) == 0)
        {
            throw new Http2ProtocolException(Http2.Error.ProtocolError, $"stream {streamId} cannot be opened by the client");
        }

        if (streamId <= _highestStreamId)
        {
            return; // a stream the relay already closed (answered or reset): what was in flight for it is dropped
        }

        _highestStreamId = streamId;

        stream = new RelayStream(_relay, this, streamId, fields);
        lock (TableLock)
        {
            if (_draining || Streams.Count >= MaxConcurrentStreams)
            {
                stream = null;
            }
            else
            {
                _lastStreamId = streamId;
                Streams.Add(streamId, stream);
            }
        }

        if (stream is null)
        {
            WriteReset(streamId, Http2.Error.RefusedStream);
            return;
        }

        stream.Start(endStream);
    }

    protected override bool OnData(int streamId, ReadOnlySpan<byte> data, bool endStream) => Find(streamId)?.OnClientData(data, endStream) ?? false;

    protected override void OnReset(int streamId, int code) => Find(streamId)?.OnClientReset();

    protected override void OnStreamWindowUpdate(int streamId, int increment) => Find(streamId)?.OnClientWindow(increment);

    protected override void OnWindowOpened()
    {
        foreach (var stream in Snapshot())
        {
            stream.OnClientWindow(0);
        }
    }

    protected override void OnGoAway(int lastStreamId, int code) => _draining = true;

    protected override int LastPeerStreamId => Volatile.Read(ref _lastStreamId);

    protected override void OnProtocolError(string detail) => GatewayLog.RelayProtocolError(_relay.Logger, "a client", detail);

    protected override void OnClosed(Exception? failure)
    {
        foreach (var stream in Snapshot())
        {
            stream.OnClientReset();
        }

        // Every pipeline of this connection ends with it, the current one and any still draining.
        PipelineContext[] live;
        lock (_pipelineLock)
        {
            live = [.. _live];
        }

        foreach (var context in live)
        {
            context.Abort();
        }
    }

    private void CloseIfIdle()
    {
        lock (TableLock)
        {
            if (Streams.Count > 0)
            {
                return;
            }
        }

        Flush();
        Close();
    }

    private sealed class DuplexPipe(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;

        public PipeWriter Output { get; } = output;
    }
}
