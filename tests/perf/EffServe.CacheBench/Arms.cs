using EffServe.Contracts.Inference;

namespace EffServe.CacheBench;

/// <summary>
/// Calls with one in flight through one gateway: a model, a way of choosing each request (fresh,
/// repeated, bypassing the cache) and the <c>effserve.cache</c> answer every call should get.
/// </summary>
internal sealed class LatencyArm(string model, string kind, string description, Replica replica, Func<int, ModelInferRequest> next, string expected)
{
    public string Model { get; } = model;

    /// <summary>off, miss, hit, hit-redis.</summary>
    public string Kind { get; } = kind;

    public string Name => $"{Model} {Kind}";

    public string Description { get; } = description;

    public Replica Replica { get; } = replica;

    public Func<int, ModelInferRequest> Next { get; } = next;

    public string Expected { get; } = expected;

    public List<double> Latencies { get; } = [];

    public List<double> RoundP50 { get; } = [];

    public List<double> RoundP99 { get; } = [];

    public long Unexpected { get; set; }

    public Cpu Cpu { get; set; } = Cpu.Zero;

    public int WarmupWindows { get; set; }

    public bool WarmupConverged { get; set; }
}

/// <summary>A closed loop of N callers through one gateway over a fixed list of requests.</summary>
internal sealed class ThroughputArm(string model, string kind, string description, Replica replica, IReadOnlyList<ModelInferRequest> requests, string expected)
{
    public string Model { get; } = model;

    /// <summary>off, on, on-redis.</summary>
    public string Kind { get; } = kind;

    public string Name => $"{Model} {Kind}";

    public string Description { get; } = description;

    public Replica Replica { get; } = replica;

    public IReadOnlyList<ModelInferRequest> Requests { get; } = requests;

    public string Expected { get; } = expected;

    public List<Window> Windows { get; } = [];
}
