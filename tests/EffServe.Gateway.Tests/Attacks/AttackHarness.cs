using System.Collections.Concurrent;
using System.Diagnostics;
using EffServe.Contracts.Inference;
using EffServe.Gateway.Routing;
using EffServe.Gateway.Tests.Support;
using EffServe.Testing;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Net.Client;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace EffServe.Gateway.Tests.Attacks;

/// <summary>
/// Two real digits replicas for the attack tests. Each attack starts a gateway of its own in front
/// of them, so what one attack leaves behind in a gateway never meets the next.
/// </summary>
public sealed class AttackReplicas : IAsyncLifetime
{
    private InferenceServer? _first;
    private InferenceServer? _second;

    public InferenceServer First => _first ?? throw new InvalidOperationException("Not started.");

    public InferenceServer Second => _second ?? throw new InvalidOperationException("Not started.");

    public async ValueTask InitializeAsync()
    {
        var replicas = await Task.WhenAll(InferenceServer.StartAsync(RepoPaths.Zoo), InferenceServer.StartAsync(RepoPaths.Zoo));
        (_first, _second) = (replicas[0], replicas[1]);
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var server in new IAsyncDisposable?[] { _first, _second })
        {
            if (server is not null)
            {
                await server.DisposeAsync();
            }
        }
    }
}

/// <summary>
/// The attack tests run one at a time and alone (no other test of the assembly beside them): the
/// gateway runs in the test process, and the memory an attack makes it hold is measured as the
/// process's growth, which another test's allocations would blur.
/// </summary>
[CollectionDefinition(nameof(UnderAttack), DisableParallelization = true)]
public sealed class UnderAttack : ICollectionFixture<AttackReplicas>;

/// <summary>What the attack code gets: the gateway under attack and a place to write what it saw.</summary>
internal sealed class AttackContext(GatewayServer gateway, AttackReplicas replicas)
{
    public GatewayServer Gateway { get; } = gateway;

    public AttackReplicas Replicas { get; } = replicas;

    public Uri Address => Gateway.Address;

    public static void Report(string line) => TestContext.Current.TestOutputHelper?.WriteLine(line);
}

/// <summary>
/// Runs one attack against a real gateway in front of the two real replicas and checks what every
/// attack must leave true:
/// <list type="bullet">
/// <item>the gateway still serves (a new client's call succeeds, grpc.health.v1 says SERVING);</item>
/// <item>every call of a well-behaved client, calling several times a second all through the
/// attack, succeeded;</item>
/// <item>no replica left rotation (the gateway logged no replica failure and no replica as not
/// serving, and both are healthy at the end);</item>
/// <item>the process grew by less than <see cref="MemoryLimit"/> while the attack ran.</item>
/// </list>
/// Memory: the gateway runs inside the test process, beside the replicas, the well-behaved client
/// and the attacker, so the gateway's own growth cannot be told apart; the process's is measured
/// instead, an upper bound of the gateway's. Two figures are sampled every half second from just
/// before the attack until just after it: the live managed heap after a full collection
/// (GC.GetTotalMemory(true): what is held, not garbage waiting for a collection; Kestrel's and
/// the gateway's buffers are managed arrays, so a gateway that holds an attacker's bytes shows
/// here) and the working set (anything native as well, such as zlib's state). The largest growth of
/// each over its value before the attack must stay under the limit. Attack inputs that are large
/// are built before the first measurement.
/// </summary>
internal static class AttackHarness
{
    public const long MemoryLimit = 256L * 1024 * 1024;
    public const string WellBehavedKey = "key-well-behaved";
    public const string WellBehavedTenant = "well-behaved";

    private const string ForwarderCategory = "EffServe.Gateway.Forwarding.ModelCallForwarder";
    private const string WatcherCategory = "EffServe.Gateway.Routing.ReplicaWatcher";
    private const int ReplicaFailedEvent = 2;
    private const int ReplicaHealthEvent = 1;

    /// <summary>
    /// Starts a gateway (door open, or with <paramref name="door"/> closed: the well-behaved client
    /// holds an API key, and <paramref name="configure"/> may add others) and runs
    /// <paramref name="attack"/> against it while a well-behaved client calls; then asserts as the
    /// class comment says.
    /// </summary>
    public static async Task RunAsync(AttackReplicas replicas, Func<AttackContext, Task> attack, bool door = false, Action<GatewaySettings>? configure = null)
    {
        var settings = new GatewaySettings().Model(Digits.Model, replicas.First.Address, replicas.Second.Address);
        if (door)
        {
            settings.Set($"Door:ApiKeys:{WellBehavedKey}", WellBehavedTenant);
        }

        configure?.Invoke(settings);
        await using var gateway = await GatewayServer.StartAsync(settings.ToDictionary());
        await gateway.WaitUntilServingAsync(Digits.Model);
        var headers = door ? new Metadata { { "effserve-api-key", WellBehavedKey } } : null;
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(gateway.Channel);
        await client.ModelInferAsync(Digits.Request(0), headers, deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct); // connected and warm

        using var stop = CancellationTokenSource.CreateLinkedTokenSource(Rpc.Ct);
        var memory = new MemorySampler();
        memory.Start(stop.Token);
        var calls = new WellBehavedClient(client, headers);
        var callers = Enumerable.Range(0, 2).Select(i => calls.RunAsync(i, stop.Token)).ToList();
        var clock = Stopwatch.StartNew();
        try
        {
            await attack(new AttackContext(gateway, replicas));
        }
        finally
        {
            // A few calls after the attack as well: they must find the gateway as it was.
            var made = calls.Count;
            while (calls.Count < made + 4 && clock.Elapsed < TimeSpan.FromMinutes(1) && !Rpc.Ct.IsCancellationRequested)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(50), Rpc.Ct);
            }

            await stop.CancelAsync();
            await Task.WhenAll(callers);
            await memory.StopAsync();
        }

        AttackContext.Report($"attack took {clock.Elapsed.TotalSeconds:F1} s; well-behaved calls: {calls.Count}, failed: {calls.Failures.Count}; "
            + $"growth over the attack: managed heap {memory.ManagedGrowth / 1048576.0:F1} MiB, working set {memory.WorkingSetGrowth / 1048576.0:F1} MiB ({memory.Samples} samples)");

        // The gateway still serves: a new client, on a new connection, is answered.
        using (var fresh = GrpcChannel.ForAddress(gateway.Address))
        {
            var reply = await new GRPCInferenceService.GRPCInferenceServiceClient(fresh).ModelInferAsync(Digits.Request(3), headers, deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);
            Assert.Equal(Digits.Classes, Digits.LogitCount(reply));
            var health = await new Health.HealthClient(fresh).CheckAsync(new HealthCheckRequest { Service = Digits.Model }, deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);
            Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, health.Status);
        }

        Assert.True(calls.Count >= 4, $"The well-behaved client made only {calls.Count} calls.");
        Assert.True(calls.Failures.IsEmpty, $"{calls.Failures.Count} of {calls.Count} well-behaved calls failed during the attack, first: {string.Join(" | ", calls.Failures.Take(3))}");
        AssertNoReplicaLeftRotation(gateway);
        Assert.True(memory.ManagedGrowth < MemoryLimit, $"The process's live managed heap grew by {memory.ManagedGrowth / 1048576.0:F0} MiB during the attack (limit {MemoryLimit / 1048576} MiB).");
        Assert.True(memory.WorkingSetGrowth < MemoryLimit, $"The process's working set grew by {memory.WorkingSetGrowth / 1048576.0:F0} MiB during the attack (limit {MemoryLimit / 1048576} MiB).");
    }

    /// <summary>No replica was marked failed nor reported not serving, and every one is healthy now.</summary>
    public static void AssertNoReplicaLeftRotation(GatewayServer gateway)
    {
        var failed = gateway.Logs.Find(ForwarderCategory, ReplicaFailedEvent);
        Assert.True(failed.Count == 0, $"A replica was marked failed: {string.Join(" | ", failed.Take(3).Select(e => e.Message))}");
        var notServing = gateway.Logs.Find(WatcherCategory, ReplicaHealthEvent).Where(e => e.Message.Contains("not serving", StringComparison.Ordinal)).ToList();
        Assert.True(notServing.Count == 0, $"A replica was reported not serving: {string.Join(" | ", notServing.Take(3).Select(e => e.Message))}");
        Assert.True(gateway.Services.GetRequiredService<ModelRouter>().TryGet(Digits.Model, out var set));
        Assert.All(set.Destinations, d => Assert.True(d.IsHealthy, $"Replica {d.Prefix} is out of rotation."));
    }

    /// <summary>Warnings and errors the gateway logged, once each, for reports.</summary>
    public static string Warnings(GatewayServer gateway) => string.Join(
        " | ",
        gateway.Logs.Entries
            .Where(e => e.Level >= LogLevel.Warning)
            .Select(e => $"{e.Category.Split('.').Last()}/{e.EventId.Name}: {(e.Exception?.GetBaseException().Message ?? e.Message).Split('\n')[0]}")
            .Distinct()
            .Take(8));

    /// <summary>A client that calls ModelInfer about five times a second per caller until stopped, and keeps every failure.</summary>
    private sealed class WellBehavedClient(GRPCInferenceService.GRPCInferenceServiceClient client, Metadata? headers)
    {
        private int _count;

        public int Count => Volatile.Read(ref _count);

        public ConcurrentQueue<string> Failures { get; } = new();

        public async Task RunAsync(int caller, CancellationToken stop)
        {
            for (var i = 0; !stop.IsCancellationRequested; i++)
            {
                try
                {
                    // The call itself is not cancelled by the stop, only bounded by its deadline:
                    // every call started must finish, and must succeed.
                    var reply = await client.ModelInferAsync(Digits.Request(caller * 1000 + i), headers, deadline: Rpc.Deadline(20), cancellationToken: Rpc.Ct);
                    if (Digits.LogitCount(reply) != Digits.Classes)
                    {
                        Failures.Enqueue($"{Digits.LogitCount(reply)} logits");
                    }
                }
                catch (RpcException e)
                {
                    Failures.Enqueue($"{e.StatusCode}: {e.Status.Detail}");
                }

                Interlocked.Increment(ref _count);
                try
                {
                    await Task.Delay(TimeSpan.FromMilliseconds(200), stop);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    /// <summary>The largest growth of the live managed heap and of the working set over their values at the start.</summary>
    private sealed class MemorySampler
    {
        private long _managedBase;
        private long _workingSetBase;
        private Task? _loop;

        public long ManagedGrowth { get; private set; }

        public long WorkingSetGrowth { get; private set; }

        public int Samples { get; private set; }

        public void Start(CancellationToken stop)
        {
            (_managedBase, _workingSetBase) = Measure();
            _loop = Task.Run(async () =>
            {
                while (!stop.IsCancellationRequested)
                {
                    try
                    {
                        await Task.Delay(TimeSpan.FromMilliseconds(500), stop);
                    }
                    catch (OperationCanceledException)
                    {
                        return;
                    }

                    Sample();
                }
            }, CancellationToken.None);
        }

        public async Task StopAsync()
        {
            if (_loop is not null)
            {
                await _loop;
            }

            Sample();
        }

        private void Sample()
        {
            var (managed, workingSet) = Measure();
            ManagedGrowth = Math.Max(ManagedGrowth, managed - _managedBase);
            WorkingSetGrowth = Math.Max(WorkingSetGrowth, workingSet - _workingSetBase);
            Samples++;
        }

        private static (long Managed, long WorkingSet) Measure()
        {
            var managed = GC.GetTotalMemory(forceFullCollection: true);
            using var process = Process.GetCurrentProcess();
            return (managed, process.WorkingSet64);
        }
    }
}
