using System.Net.Http;
using System.Net.Sockets;
using Grpc.Core;
using Grpc.Net.Client;

namespace EffServe.Gateway.Routing;

/// <summary>What one active health probe of a replica found.</summary>
public enum ProbeResult
{
    /// <summary>The replica answered SERVING for its model.</summary>
    Serving,

    /// <summary>The replica answered, and said it does not serve the model (loading, draining, unknown model).</summary>
    NotServing,

    /// <summary>The probe ran out of time without an answer.</summary>
    TimedOut,

    /// <summary>The probe failed otherwise (no connection, an error status).</summary>
    Failed,
}

/// <summary>Where a probe left a replica's active health.</summary>
public enum ProbeVerdict
{
    /// <summary>In rotation; no failed probe pending.</summary>
    Serving,

    /// <summary>In rotation: the probe timed out, but the replica answered calls meanwhile, so it is busy, not dead.</summary>
    Busy,

    /// <summary>In rotation, with fewer consecutive failed probes than the threshold.</summary>
    Failing,

    /// <summary>Out of rotation until a probe answers SERVING.</summary>
    Out,
}

/// <summary>
/// One replica of a model's inference service, with its health and load. A replica is in rotation
/// while active health keeps it there (it leaves after a run of failed probes, or at once when it
/// says it does not serve; one SERVING answer brings it back) and no passive penalty holds it out
/// (set when a call found the replica unreachable).
/// </summary>
public sealed class Destination : IDisposable
{
    private readonly TimeProvider _time;
    private readonly Lock _probeLock = new();
    private int _outstanding;
    private long _penaltyUntil;
    private long _lastAnswered;
    private bool _activeHealthy = true;
    private int _failedProbes;
    private bool _everServed;
    private GrpcChannel? _channel;

    public Destination(Uri address, TimeProvider time)
    {
        Address = address;
        Prefix = address.GetLeftPart(UriPartial.Authority);
        _time = time;
    }

    public Uri Address { get; }

    /// <summary>scheme://host:port, what the forwarder prefixes to the request path.</summary>
    public string Prefix { get; }

    /// <summary>Requests in flight to this replica.</summary>
    public int Outstanding => Volatile.Read(ref _outstanding);

    /// <summary>
    /// Whether active health keeps the replica in rotation. A replica enters rotation with its first
    /// SERVING answer: one not probed yet, or never found serving, takes no calls.
    /// </summary>
    public bool ActiveHealthy => Volatile.Read(ref _activeHealthy);

    /// <summary>Failed probes since the last one that found the replica serving or busy.</summary>
    public int ConsecutiveFailedProbes => Volatile.Read(ref _failedProbes);

    /// <summary>In rotation: active health keeps it and no passive penalty holds it out.</summary>
    public bool IsHealthy => ActiveHealthy && _time.GetTimestamp() >= Volatile.Read(ref _penaltyUntil);

    public void Enter() => Interlocked.Increment(ref _outstanding);

    /// <summary>
    /// Counts a call in unless <paramref name="limit"/> calls are already in flight here; false
    /// (nothing counted) when the replica is full.
    /// </summary>
    public bool TryEnter(int limit)
    {
        if (Interlocked.Increment(ref _outstanding) <= limit)
        {
            return true;
        }

        Interlocked.Decrement(ref _outstanding);
        return false;
    }

    public void Leave() => Interlocked.Decrement(ref _outstanding);

    /// <summary>
    /// The replica answered a forwarded call (any gRPC status but UNAVAILABLE): proof that it is
    /// alive, so a probe that times out meanwhile counts as busy rather than failed. One clock read
    /// and one store; safe to call from any thread on every call.
    /// </summary>
    public void RecordSuccess() => Volatile.Write(ref _lastAnswered, _time.GetTimestamp());

    /// <summary>Whether the replica answered a forwarded call within <paramref name="window"/> of now.</summary>
    public bool AnsweredWithin(TimeSpan window)
    {
        var last = Volatile.Read(ref _lastAnswered);
        return last != 0 && _time.GetElapsedTime(last) <= window;
    }

    /// <summary>
    /// The replica is unreachable (see <see cref="ReplicaFailures.IsReplicaUnreachable"/>): out of
    /// rotation for <paramref name="penalty"/>, or until a probe finds it serving.
    /// </summary>
    public void MarkFailed(TimeSpan penalty) =>
        Volatile.Write(ref _penaltyUntil, _time.GetTimestamp() + (long)(penalty.TotalSeconds * _time.TimestampFrequency));

    /// <summary>
    /// Records one active probe. SERVING keeps or brings the replica back and clears a passive
    /// penalty; NOT_SERVING takes it out at once (the replica's own word); a timeout while the
    /// replica answered calls within <paramref name="busyWindow"/> finds it busy, not dead: it
    /// stays, and the run of failures starts again; any other failure counts, and the
    /// <paramref name="failureThreshold"/>-th in a row takes the replica out. A passive penalty is
    /// left as it is by anything but SERVING. Until its first SERVING answer a replica gets no such
    /// grace for a failed probe (one that is not a timeout): it leaves at once.
    /// </summary>
    public ProbeVerdict RecordProbe(ProbeResult result, int failureThreshold, TimeSpan busyWindow)
    {
        lock (_probeLock)
        {
            switch (result)
            {
                case ProbeResult.Serving:
                    _everServed = true;
                    Volatile.Write(ref _failedProbes, 0);
                    Volatile.Write(ref _activeHealthy, true);
                    Volatile.Write(ref _penaltyUntil, 0);
                    return ProbeVerdict.Serving;
                case ProbeResult.NotServing:
                    Volatile.Write(ref _activeHealthy, false);
                    return ProbeVerdict.Out;
                case ProbeResult.TimedOut when ActiveHealthy && AnsweredWithin(busyWindow):
                    Volatile.Write(ref _failedProbes, 0); // alive: the run of failures is broken
                    return ProbeVerdict.Busy;
                case ProbeResult.Failed when !_everServed:
                    // A replica never found serving has earned no grace: one that cannot even be
                    // asked (not listening yet, an error) stays out until it answers SERVING.
                    Volatile.Write(ref _failedProbes, _failedProbes + 1);
                    Volatile.Write(ref _activeHealthy, false);
                    return ProbeVerdict.Out;
                default:
                    var failed = _failedProbes + 1;
                    Volatile.Write(ref _failedProbes, failed);
                    if (failed >= failureThreshold)
                    {
                        Volatile.Write(ref _activeHealthy, false);
                    }

                    return ActiveHealthy ? ProbeVerdict.Failing : ProbeVerdict.Out;
            }
        }
    }

    /// <summary>A gRPC channel to the replica for the gateway's own calls (probes, aggregation).</summary>
    public GrpcChannel Channel(HttpMessageHandler handler) =>
        LazyInitializer.EnsureInitialized(ref _channel, () => GrpcChannel.ForAddress(Address, new GrpcChannelOptions { HttpHandler = handler, DisposeHttpClient = false }));

    public void Dispose() => _channel?.Dispose();

    public override string ToString() => Prefix;
}

/// <summary>Which failures say a replica is gone, as opposed to one call going wrong.</summary>
public static class ReplicaFailures
{
    private const int MaxDepth = 16;

    /// <summary>
    /// True when <paramref name="error"/> (or an exception it wraps, a gRPC status's debug
    /// exception included) says the replica could not be reached: the connection was refused, the
    /// host or network is unreachable, its name did not resolve, the connect or TLS handshake
    /// failed or timed out. False for everything one client's call can cause on a live replica: a
    /// reset stream, a GOAWAY (ENHANCE_YOUR_CALM or any other), an oversize or malformed response,
    /// a response that ended early, a connection reset or aborted after it was established, a call
    /// cancelled by its client or its deadline; and false for null.
    /// </summary>
    public static bool IsReplicaUnreachable(Exception? error)
    {
        for (var (e, depth) = (error, 0); e is not null && depth < MaxDepth; depth++)
        {
            switch (e)
            {
                case HttpRequestException { HttpRequestError: HttpRequestError.ConnectionError or HttpRequestError.NameResolutionError or HttpRequestError.SecureConnectionError }:
                    return true;
                case SocketException socket when IsUnreachable(socket.SocketErrorCode):
                    return true;
                case OperationCanceledException { InnerException: TimeoutException }:
                    return true; // SocketsHttpHandler's ConnectTimeout; deadlines and cancellations carry no TimeoutException
                case RpcException { Status.DebugException: { } inner }:
                    e = inner;
                    continue;
            }

            e = e.InnerException;
        }

        return false;
    }

    private static bool IsUnreachable(SocketError code) => code is SocketError.ConnectionRefused
        or SocketError.HostUnreachable or SocketError.NetworkUnreachable or SocketError.NetworkDown or SocketError.HostDown
        or SocketError.HostNotFound or SocketError.TryAgain or SocketError.NoData or SocketError.TimedOut or SocketError.AddressNotAvailable;
}

/// <summary>The replicas of one model and the choice among them.</summary>
public sealed class ReplicaSet
{
    private readonly bool _powerOfTwo;
    private readonly TimeProvider _time;
    private readonly Random _random;
    private Destination[] _destinations = [];

    /// <param name="model">The model the replicas serve.</param>
    /// <param name="powerOfTwoChoices">Pick the less loaded of two random replicas (else the least loaded of all).</param>
    /// <param name="time">The clock of health penalties and answers.</param>
    /// <param name="random">The draws of power of two choices; shared by every caller, so it must be thread-safe (<see cref="Random.Shared"/>) unless one thread picks.</param>
    public ReplicaSet(string model, bool powerOfTwoChoices, TimeProvider time, Random random)
    {
        Model = model;
        _powerOfTwo = powerOfTwoChoices;
        _time = time;
        _random = random;
    }

    public string Model { get; }

    public IReadOnlyList<Destination> Destinations => Volatile.Read(ref _destinations);

    /// <summary>Whether a replica is in rotation now.</summary>
    public bool HasHealthy => Destinations.Any(d => d.IsHealthy);

    /// <summary>
    /// Replaces the set of addresses, keeping the state of replicas that stay; returns the ones that left.
    /// </summary>
    public IReadOnlyList<Destination> Update(IEnumerable<Uri> addresses)
    {
        var current = Destinations.ToDictionary(d => d.Prefix, StringComparer.OrdinalIgnoreCase);
        var next = addresses
            .Select(a => current.TryGetValue(a.GetLeftPart(UriPartial.Authority), out var kept) ? kept : new Destination(a, _time))
            .DistinctBy(d => d.Prefix, StringComparer.OrdinalIgnoreCase)
            .ToArray();
        Volatile.Write(ref _destinations, next);
        return current.Values.Except(next).ToList();
    }

    /// <summary>
    /// A healthy replica other than <paramref name="exclude"/>: the less loaded of two drawn at
    /// random (power of two choices), or the least loaded of all; null when none is healthy.
    /// </summary>
    public Destination? Pick(Destination? exclude = null)
    {
        var all = Volatile.Read(ref _destinations);
        Span<int> healthy = all.Length <= 64 ? stackalloc int[all.Length] : new int[all.Length];
        var count = 0;
        for (var i = 0; i < all.Length; i++)
        {
            if (all[i] != exclude && all[i].IsHealthy)
            {
                healthy[count++] = i;
            }
        }

        if (count == 0)
        {
            return null;
        }

        if (count == 1)
        {
            return all[healthy[0]];
        }

        if (_powerOfTwo)
        {
            var a = _random.Next(count);
            var b = _random.Next(count - 1);
            b += b >= a ? 1 : 0;
            var first = all[healthy[a]];
            var second = all[healthy[b]];
            return second.Outstanding < first.Outstanding ? second : first;
        }

        var best = all[healthy[0]];
        for (var i = 1; i < count; i++)
        {
            if (all[healthy[i]].Outstanding < best.Outstanding)
            {
                best = all[healthy[i]];
            }
        }

        return best;
    }
}

/// <summary>Every routed model and its replicas.</summary>
public sealed class ModelRouter : IDisposable
{
    private readonly Dictionary<string, ReplicaSet> _models;

    public ModelRouter(Microsoft.Extensions.Options.IOptions<GatewayOptions> options, TimeProvider time)
        : this(options, time, Random.Shared)
    {
    }

    internal ModelRouter(Microsoft.Extensions.Options.IOptions<GatewayOptions> options, TimeProvider time, Random random)
    {
        var powerOfTwo = options.Value.LoadBalancing == "PowerOfTwoChoices";
        _models = new Dictionary<string, ReplicaSet>(StringComparer.Ordinal);
        foreach (var (model, route) in options.Value.Models)
        {
            var set = new ReplicaSet(model, powerOfTwo, time, random);
            set.Update(route.Destinations.Select(d => new Uri(d)));
            _models.Add(model, set);
        }
    }

    public IReadOnlyCollection<ReplicaSet> Models => _models.Values;

    public IEnumerable<string> Names => _models.Keys.Order(StringComparer.Ordinal);

    public bool TryGet(string model, out ReplicaSet replicas) => _models.TryGetValue(model, out replicas!);

    /// <summary>
    /// Whether <paramref name="service"/> can be served now, read from the rotation as it is at this
    /// moment (active and passive health): "" when every model has a replica in rotation, a model's
    /// name when that model has one; null for a name that is not a model served here.
    /// </summary>
    public bool? IsServing(string service)
    {
        if (service.Length == 0)
        {
            return _models.Values.All(m => m.HasHealthy);
        }

        return _models.TryGetValue(service, out var replicas) ? replicas.HasHealthy : null;
    }

    public void Dispose()
    {
        foreach (var destination in _models.Values.SelectMany(m => m.Destinations))
        {
            destination.Dispose();
        }
    }
}
