using System.Buffers;
using System.Collections.Frozen;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using EffServe.Gateway.Routing;
using EffServe.ServiceDefaults;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.Extensions.Options;

namespace EffServe.Gateway.Relay;

/// <summary>
/// The gateway's HTTP/2 frame relay: a Kestrel connection middleware that serves h2c connections
/// itself, forwarding the frames of unary model calls straight to a replica's connection on the
/// thread that read them, instead of through Kestrel's request pipeline, YARP and HttpClient. A
/// call the relay does not route itself goes, frame for frame, to the gateway's full pipeline for
/// the same connection, so every door, aggregation and error path stays as it is. Connections that
/// do not start with the h2c preface (TLS, HTTP/1.1) pass to Kestrel untouched.
///
/// The relay serves only where it changes nothing a caller can see: replicas over h2c and no spans
/// to make. It keeps the door itself for API keys, tenant allow-lists and rate limits, and leaves
/// every call it cannot admit (bearer tokens included) to the pipeline. With TLS to replicas or
/// spans, every connection passes to Kestrel as before.
/// </summary>
public sealed class FrameRelay : IDisposable
{
    private static readonly Dictionary<string, RelayCall> s_calls = new(StringComparer.Ordinal)
    {
        ["/inference.GRPCInferenceService/ModelInfer"] = RelayCall.ByModel,
        ["/inference.GRPCInferenceService/ModelMetadata"] = RelayCall.ByModel,
        ["/inference.GRPCInferenceService/ModelReady"] = RelayCall.ByModel,
        ["/inference.GRPCInferenceService/ModelConfig"] = RelayCall.ByModel,
        ["/effserve.v1.JobService/SubmitJob"] = RelayCall.ByModel,
        ["/effserve.v1.JobService/GetJob"] = RelayCall.ByJobId,
        ["/effserve.v1.JobService/CancelJob"] = RelayCall.ByJobId,
    };

    private readonly ConcurrentDictionary<Destination, UpstreamPool> _pools = new();
    private readonly ConcurrentDictionary<ClientConnection, byte> _clients = new();
    private readonly TimeSpan _connectTimeout = TimeSpan.FromSeconds(5);
    private readonly CancellationTokenRegistration _stopping;
    private readonly Timer _tick;
    private int _ticks;
    private readonly Meter _meter;
    private readonly Histogram<double> _duration;
    private long _relayed;
    private long _pipelined;
    private long _pipelines;

    public FrameRelay(IOptions<GatewayOptions> options, ModelRouter router, Door.GatewayDoor door, ILogger<Forwarding.ModelCallForwarder> logger, IHostApplicationLifetime lifetime, IMeterFactory meters, TelemetryWiring? telemetry = null)
    {
        var o = options.Value;
        Router = router;
        Logger = logger; // the forwarding path's events, under the forwarder's category whichever path a call takes
        PassiveHealthPenalty = o.PassiveHealthPenalty;
        MaxRelayedMessage = Math.Min(o.MaxRequestBytes, MaxRelayedMessageLimit);
        Door = door;
        Models = o.Models;
        RequiresIdentity = o.Door.RequiresIdentity;
        Reason = (o.FrameRelay, o.BackendTls, telemetry?.Traces ?? false) switch
        {
            (false, _, _) => "EffServe:Gateway:FrameRelay is false",
            (_, true, _) => "replicas are called over TLS",
            (_, _, true) => "the gateway makes spans",
            _ => null,
        };
        _stopping = lifetime.ApplicationStopping.Register(DrainAll);
        _tick = new Timer(static r => ((FrameRelay)r!).Tick(), this, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
        _meter = meters.Create(MeterName);
        _duration = _meter.CreateHistogram("effserve.gateway.request.duration", "s",
            "Time from a call's headers reaching the relay to its last frame leaving it, by method, model, gRPC status and path (relay: straight to a replica; pipeline: the gateway's ASP.NET Core pipeline).",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] });
    }

    /// <summary>The gateway's own meter (the relay's instruments).</summary>
    public const string MeterName = "EffServe.Gateway";

    /// <summary>Calls the relay sent straight to a replica.</summary>
    internal long RelayedCalls => Interlocked.Read(ref _relayed);

    /// <summary>Kestrel pipelines started behind relayed connections (one per connection, again after one ends).</summary>
    internal long PipelinesStarted => Interlocked.Read(ref _pipelines);

    internal void PipelineStarted() => Interlocked.Increment(ref _pipelines);

    /// <summary>Streams the relay passed to the gateway's pipeline.</summary>
    internal long PipelineCalls => Interlocked.Read(ref _pipelined);

    /// <summary>Whether the relay serves h2c connections.</summary>
    public bool Enabled => Reason is null;

    /// <summary>Why the relay is off; null when it is on.</summary>
    public string? Reason { get; }

    internal ModelRouter Router { get; }

    internal ILogger Logger { get; }

    internal TimeSpan PassiveHealthPenalty { get; }

    /// <summary>How long a new connection may take to send the HTTP/2 preface before Kestrel gets it as it is.</summary>
    internal static readonly TimeSpan PrefaceTimeout = TimeSpan.FromSeconds(10);

    /// <summary>A relayed connection with no stream open for this long gets GOAWAY (Kestrel's default keep-alive limit).</summary>
    internal static readonly TimeSpan IdleTimeout = TimeSpan.FromSeconds(130);

    /// <summary>
    /// A stream whose first message is not whole after this long goes to the pipeline, where
    /// Kestrel's minimum request data rate applies to it.
    /// </summary>
    internal static readonly TimeSpan FirstMessageTimeout = TimeSpan.FromSeconds(5);

    /// <summary>A call whose client takes none of its waiting response bytes for this long is reset.</summary>
    internal static readonly TimeSpan ResponseStallTimeout = TimeSpan.FromSeconds(10);

    /// <summary>The largest first message the relay waits for (64 KiB); see <see cref="RelayConnection.ConnectionReceiveWindow"/>.</summary>
    internal const int MaxRelayedMessageLimit = 64 * 1024;

    /// <summary>Larger first messages go to the pipeline, which streams them and enforces the size limit.</summary>
    internal int MaxRelayedMessage { get; }

    /// <summary>The connection middleware: serves h2c connections, passes every other one on.</summary>
    public async Task OnConnectionAsync(ConnectionContext context, ConnectionDelegate next)
    {
        if (!Enabled || !await StartsWithPrefaceAsync(context).ConfigureAwait(false))
        {
            await next(context).ConfigureAwait(false);
            return;
        }

        var client = new ClientConnection(this, context, next);
        _clients.TryAdd(client, 0);
        using var closing = (context.Features.Get<IConnectionLifetimeNotificationFeature>()?.ConnectionClosedRequested ?? default).Register(static c => ((ClientConnection)c!).Drain(), client);
        try
        {
            await client.RunAsync().ConfigureAwait(false);
            await client.PipelineDone.ConfigureAwait(false);
        }
        finally
        {
            _clients.TryRemove(client, out _);
        }
    }

    private static readonly FrozenDictionary<string, string> s_methods = new[]
    {
        "/inference.GRPCInferenceService/ServerLive", "/inference.GRPCInferenceService/ServerReady", "/inference.GRPCInferenceService/ModelReady",
        "/inference.GRPCInferenceService/ServerMetadata", "/inference.GRPCInferenceService/ModelMetadata", "/inference.GRPCInferenceService/ModelInfer",
        "/inference.GRPCInferenceService/ModelStreamInfer", "/inference.GRPCInferenceService/ModelConfig", "/inference.GRPCInferenceService/ModelStatistics",
        "/inference.GRPCInferenceService/RepositoryIndex", "/effserve.v1.ZooService/ListModels", "/effserve.v1.JobService/SubmitJob",
        "/effserve.v1.JobService/GetJob", "/effserve.v1.JobService/CancelJob", "/effserve.v1.JobService/StreamJobResults", "/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch",
    }.ToFrozenDictionary(p => p, p => p[(p.LastIndexOf('/') + 1)..], StringComparer.Ordinal);

    /// <summary>The method of a known path, "other" for any other (the metric's tag stays bounded).</summary>
    internal static string KnownMethod(string path) => s_methods.GetValueOrDefault(path, "other");

    internal Door.GatewayDoor Door { get; }

    internal IReadOnlyDictionary<string, ModelRouteOptions> Models { get; }

    /// <summary>Whether the door names a tenant (API keys or JWT): the relay then tells the replica, and drops the credentials.</summary>
    internal bool RequiresIdentity { get; }

    /// <summary>
    /// What the relay does with a stream, from its request headers. Only a well-formed gRPC request
    /// (as Kestrel would accept it) to a relayed method goes straight on; anything else, malformed
    /// headers included, is the pipeline's, whose Kestrel judges it on this client's own connection
    /// and never on a replica connection other clients share.
    /// </summary>
    internal static RelayCall Classify(List<HeaderField> headers)
    {
        string? path = null;
        string? contentType = null;
        var method = false;
        var scheme = false;
        var authority = false;
        var regular = false;
        var apiKeys = 0;
        var size = 0;
        string? contentLength = null;
        if (headers.Count > MaxRelayedFields)
        {
            return RelayCall.Pipeline;
        }

        foreach (var field in headers)
        {
            size += field.Name.Length + field.Value.Length;
            if (size > MaxRelayedHeaderBytes || !ValidValue(field.Value))
            {
                return RelayCall.Pipeline;
            }

            if (field.Name.StartsWith(':'))
            {
                // Pseudo-headers first, each once, and only the four of a request.
                if (regular)
                {
                    return RelayCall.Pipeline;
                }

                switch (field.Name)
                {
                    case ":method" when !method && field.Value == "POST":
                        method = true;
                        break;
                    case ":scheme" when !scheme:
                        scheme = true;
                        break;
                    case ":authority" when !authority:
                        authority = true;
                        break;
                    case ":path" when path is null:
                        path = field.Value;
                        break;
                    default:
                        return RelayCall.Pipeline;
                }

                continue;
            }

            regular = true;
            if (!ValidName(field.Name) || field.Name is "connection" or "keep-alive" or "proxy-connection" or "transfer-encoding" or "upgrade"
                || (field.Name == "te" && field.Value != "trailers"))
            {
                return RelayCall.Pipeline;
            }

            switch (field.Name)
            {
                case "content-type":
                    contentType = field.Value;
                    break;
                case GatewayDoorHeader:
                    apiKeys++;
                    break;
                case "content-length":
                    // Kestrel fails the whole connection over a malformed or repeated one, and
                    // resets a stream whose body disagrees: only the pipeline may meet those.
                    if (contentLength is not null || field.Value.Length is 0 or > 10 || !field.Value.All(char.IsAsciiDigit))
                    {
                        return RelayCall.Pipeline;
                    }

                    contentLength = field.Value;
                    break;
            }
        }

        // A repeated API key is the pipeline's to refuse, as it always was.
        return method && scheme && path is not null && apiKeys <= 1 && contentType is not null
            && contentType.StartsWith("application/grpc", StringComparison.Ordinal)
            && s_calls.TryGetValue(path, out var call) ? call : RelayCall.Pipeline;
    }

    /// <summary>
    /// Header limits well inside Kestrel's defaults (100 fields, 32 KiB): a replica never sees a
    /// header block it would fail its connection for, a connection every client shares.
    /// </summary>
    private const int MaxRelayedFields = 64;

    private const int MaxRelayedHeaderBytes = 16 * 1024;

    private const string GatewayDoorHeader = EffServe.Gateway.Door.GatewayDoor.ApiKeyHeader;

    /// <summary>An HTTP/2 field name: a non-empty token in lowercase.</summary>
    private static bool ValidName(string name)
    {
        if (name.Length == 0)
        {
            return false;
        }

        foreach (var c in name)
        {
            var ok = c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '!' or '#' or '$' or '%' or '&' or '\'' or '*' or '+' or '-' or '.' or '^' or '_' or '`' or '|' or '~';
            if (!ok)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// A field value of visible ASCII, spaces and tabs, without surrounding whitespace. Anything
    /// else (control characters, bytes Kestrel would have to read as UTF-8) is the pipeline's.
    /// </summary>
    private static bool ValidValue(string value)
    {
        foreach (var c in value)
        {
            if ((c < 0x20 && c != '\t') || c >= 0x7F)
            {
                return false;
            }
        }

        return value.Length == 0 || (value[0] is not (' ' or '\t') && value[^1] is not (' ' or '\t'));
    }

    /// <summary>One stream through the relay has ended.</summary>
    internal void Record(string method, string model, string status, bool relayed, long started)
    {
        Interlocked.Increment(ref relayed ? ref _relayed : ref _pipelined);
        if (_duration.Enabled)
        {
            _duration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds, new TagList
            {
                { "rpc.method", method },
                { "effserve.model", model },
                { "rpc.grpc.status_code", status },
                { "effserve.gateway.path", relayed ? "relay" : "pipeline" },
            });
        }
    }

    internal UpstreamPool PoolFor(Destination destination) =>
        _pools.GetOrAdd(destination, static (d, relay) => new UpstreamPool(d, relay._connectTimeout, relay.Logger), this);

    /// <summary>
    /// True (the preface consumed) when the connection opens with the h2c preface; false, with
    /// nothing consumed, for anything else.
    /// </summary>
    private static async ValueTask<bool> StartsWithPrefaceAsync(ConnectionContext context)
    {
        var input = context.Transport.Input;
        var length = Http2.Preface.Length;
        var head = new byte[length];
        while (true)
        {
            System.IO.Pipelines.ReadResult result;
            using var wait = CancellationTokenSource.CreateLinkedTokenSource(context.ConnectionClosed);
            wait.CancelAfter(PrefaceTimeout);
            try
            {
                result = await input.ReadAsync(wait.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return false; // silent or gone: Kestrel's own limits take it from here
            }

            var buffer = result.Buffer;
            var known = (int)Math.Min(buffer.Length, length);
            buffer.Slice(0, known).CopyTo(head);
            if (!head.AsSpan(0, known).SequenceEqual(Http2.Preface[..known]))
            {
                input.AdvanceTo(buffer.Start);
                return false;
            }

            if (known == length)
            {
                input.AdvanceTo(buffer.GetPosition(length));
                return true;
            }

            if (result.IsCompleted)
            {
                input.AdvanceTo(buffer.Start);
                return false;
            }

            input.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    /// <summary>Once a second: slow first messages and idle connections; every 30 s, departed replicas.</summary>
    private void Tick()
    {
        var now = System.Diagnostics.Stopwatch.GetTimestamp();
        foreach (var client in _clients.Keys)
        {
            client.Tick(now);
        }

        if (++_ticks % 30 == 0)
        {
            PrunePools();
        }
    }

    /// <summary>Closes the connections to replicas that left every model's rotation (DNS answers change).</summary>
    private void PrunePools()
    {
        var current = Router.Models.SelectMany(m => m.Destinations).ToHashSet();
        foreach (var (destination, pool) in _pools)
        {
            if (!current.Contains(destination) && _pools.TryRemove(destination, out _))
            {
                pool.CloseAll(now: false); // calls under way finish, as they would through HttpClient
            }
        }
    }

    private void DrainAll()
    {
        foreach (var client in _clients.Keys)
        {
            client.Drain();
        }
    }

    public void Dispose()
    {
        _stopping.Dispose();
        _tick.Dispose();
        _meter.Dispose();
        foreach (var pool in _pools.Values)
        {
            pool.CloseAll(now: true);
        }
    }
}
