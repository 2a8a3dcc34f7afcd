using System.Diagnostics;
using Grpc.Net.Client;

namespace EffServe.Gateway.Routing;

/// <summary>One replica of a model's inference service, with its health and load.</summary>
public sealed class Destination : IDisposable
{
    private int _outstanding;
    private long _penaltyUntil;
    private GrpcChannel? _channel;

    public Destination(Uri address)
    {
        Address = address;
        Prefix = address.GetLeftPart(UriPartial.Authority);
    }

    public Uri Address { get; }

    /// <summary>scheme://host:port, what the forwarder prefixes to the request path.</summary>
    public string Prefix { get; }

    /// <summary>Requests in flight to this replica.</summary>
    public int Outstanding => Volatile.Read(ref _outstanding);

    /// <summary>The last answer of the active health probe; a replica not probed yet counts as healthy.</summary>
    public bool ActiveHealthy { get; set; } = true;

    public bool IsHealthy => ActiveHealthy && Stopwatch.GetTimestamp() >= Volatile.Read(ref _penaltyUntil);

    public void Enter() => Interlocked.Increment(ref _outstanding);

    public void Leave() => Interlocked.Decrement(ref _outstanding);

    /// <summary>A transport failure: out of rotation for <paramref name="penalty"/>, or until a probe says it serves.</summary>
    public void MarkFailed(TimeSpan penalty) =>
        Volatile.Write(ref _penaltyUntil, Stopwatch.GetTimestamp() + (long)(penalty.TotalSeconds * Stopwatch.Frequency));

    /// <summary>A successful probe clears a passive penalty at once.</summary>
    public void MarkServing()
    {
        ActiveHealthy = true;
        Volatile.Write(ref _penaltyUntil, 0);
    }

    /// <summary>A gRPC channel to the replica for the gateway's own calls (probes, aggregation).</summary>
    public GrpcChannel Channel(HttpMessageHandler handler) =>
        LazyInitializer.EnsureInitialized(ref _channel, () => GrpcChannel.ForAddress(Address, new GrpcChannelOptions { HttpHandler = handler, DisposeHttpClient = false }));

    public void Dispose() => _channel?.Dispose();

    public override string ToString() => Prefix;
}

/// <summary>The replicas of one model and the choice among them.</summary>
public sealed class ReplicaSet
{
    private readonly bool _powerOfTwo;
    private Destination[] _destinations = [];

    public ReplicaSet(string model, bool powerOfTwoChoices)
    {
        Model = model;
        _powerOfTwo = powerOfTwoChoices;
    }

    public string Model { get; }

    public IReadOnlyList<Destination> Destinations => Volatile.Read(ref _destinations);

    public bool HasHealthy => Destinations.Any(d => d.IsHealthy);

    /// <summary>
    /// Replaces the set of addresses, keeping the state of replicas that stay; returns the ones that left.
    /// </summary>
    public IReadOnlyList<Destination> Update(IEnumerable<Uri> addresses)
    {
        var current = Destinations.ToDictionary(d => d.Prefix, StringComparer.OrdinalIgnoreCase);
        var next = addresses
            .Select(a => current.TryGetValue(a.GetLeftPart(UriPartial.Authority), out var kept) ? kept : new Destination(a))
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
            var a = Random.Shared.Next(count);
            var b = Random.Shared.Next(count - 1);
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

    public ModelRouter(Microsoft.Extensions.Options.IOptions<GatewayOptions> options)
    {
        var powerOfTwo = options.Value.LoadBalancing == "PowerOfTwoChoices";
        _models = new Dictionary<string, ReplicaSet>(StringComparer.Ordinal);
        foreach (var (model, route) in options.Value.Models)
        {
            var set = new ReplicaSet(model, powerOfTwo);
            set.Update(route.Destinations.Select(d => new Uri(d)));
            _models.Add(model, set);
        }
    }

    public IReadOnlyCollection<ReplicaSet> Models => _models.Values;

    public IEnumerable<string> Names => _models.Keys.Order(StringComparer.Ordinal);

    public bool TryGet(string model, out ReplicaSet replicas) => _models.TryGetValue(model, out replicas!);

    public void Dispose()
    {
        foreach (var destination in _models.Values.SelectMany(m => m.Destinations))
        {
            destination.Dispose();
        }
    }
}
