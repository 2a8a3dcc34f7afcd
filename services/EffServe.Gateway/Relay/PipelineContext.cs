using System.IO.Pipelines;
using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http.Features;

namespace EffServe.Gateway.Relay;

/// <summary>
/// The connection Kestrel's HTTP/2 server is given for one pipeline behind a relayed client
/// connection. It has the client connection's features (endpoints, metrics, graceful-shutdown
/// notice) but its own transport (an in-memory pipe pair), its own heartbeat (passed on from the
/// client connection only while this pipeline lives) and its own abort, which ends this pipeline and
/// never the client's socket. Kestrel keeps timers and heartbeat handlers of a connection past its
/// end; given the client's own context, a pipeline that ended would reset the client's socket a few
/// seconds later.
/// </summary>
internal sealed class PipelineContext : ConnectionContext, IConnectionHeartbeatFeature, IConnectionLifetimeFeature, IConnectionTransportFeature
{
    private readonly ConnectionContext _client;
    private readonly UpstreamConnection _relaySide;
    private readonly CancellationTokenSource _closed = new();
    private readonly Lock _lock = new();
    private List<(Action<object> Action, object State)>? _heartbeats = [];

    public PipelineContext(ConnectionContext client, IDuplexPipe transport, UpstreamConnection relaySide)
    {
        _client = client;
        _relaySide = relaySide;
        Transport = transport;
        var features = new FeatureCollection(client.Features);
        features.Set<IConnectionHeartbeatFeature>(this);
        features.Set<IConnectionLifetimeFeature>(this);
        features.Set<IConnectionTransportFeature>(this);
        Features = features;
        ConnectionClosed = _closed.Token;
    }

    public override string ConnectionId
    {
        get => _client.ConnectionId;
        set => throw new NotSupportedException("A pipeline keeps its client connection's id.");
    }

    public override IFeatureCollection Features { get; }

    public override IDictionary<object, object?> Items { get; set; } = new Dictionary<object, object?>();

    public override IDuplexPipe Transport { get; set; }

    public override CancellationToken ConnectionClosed { get; set; }

    public override EndPoint? LocalEndPoint
    {
        get => _client.LocalEndPoint;
        set => throw new NotSupportedException("A pipeline keeps its client connection's endpoints.");
    }

    public override EndPoint? RemoteEndPoint
    {
        get => _client.RemoteEndPoint;
        set => throw new NotSupportedException("A pipeline keeps its client connection's endpoints.");
    }

    /// <summary>Ends this pipeline (its in-memory connection), never the client's socket.</summary>
    public override void Abort(ConnectionAbortedException abortReason) => Abort();

    public override void Abort()
    {
        End();
        _relaySide.Close();
    }

    public void OnHeartbeat(Action<object> action, object state)
    {
        lock (_lock)
        {
            _heartbeats?.Add((action, state));
        }
    }

    /// <summary>One of the client connection's heartbeats, passed on while the pipeline lives.</summary>
    public void Beat()
    {
        List<(Action<object> Action, object State)>? heartbeats;
        lock (_lock)
        {
            heartbeats = _heartbeats is null ? null : [.. _heartbeats];
        }

        foreach (var (action, state) in heartbeats ?? [])
        {
            action(state);
        }
    }

    /// <summary>Kestrel is done with this pipeline: no more heartbeats reach it, and its connection counts as closed.</summary>
    public void End()
    {
        lock (_lock)
        {
            if (_heartbeats is null)
            {
                return;
            }

            _heartbeats = null;
        }

        _closed.Cancel();
    }

    public override async ValueTask DisposeAsync()
    {
        End();
        _closed.Dispose();
        await base.DisposeAsync().ConfigureAwait(false);
    }
}
