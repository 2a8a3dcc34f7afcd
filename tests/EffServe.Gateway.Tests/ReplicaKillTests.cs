using System.Collections.Concurrent;
using EffServe.Contracts.Inference;
using EffServe.Gateway.Routing;
using EffServe.Gateway.Tests.Support;
using EffServe.Testing;
using Grpc.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace EffServe.Gateway.Tests;

/// <summary>
/// A replica dies and comes back, on replicas of its own so that no other test sees the hole. Load
/// is bounded (2,000 calls from 8 callers) and every wait has a limit.
/// </summary>
public sealed class ReplicaKillTests
{
    private const int Requests = 2000;
    private const int Callers = 8;
    private const string ForwarderCategory = "EffServe.Gateway.Forwarding.ModelCallForwarder";
    private const int ReplicaFailedEvent = 2;
    private const int RetryingUnavailableEvent = 3;

    private static void Report(string line) => TestContext.Current.TestOutputHelper?.WriteLine(line);

    /// <summary>What the gateway warned about, once each (YARP's per-request body-size warning left out).</summary>
    private static string Warnings(GatewayServer gateway) => string.Join(
        " | ",
        gateway.Logs.Entries
            .Where(e => e.Level >= LogLevel.Warning && !e.Message.Contains("max request body size", StringComparison.Ordinal))
            .Select(e => $"{e.EventId.Name}: {e.Exception?.GetBaseException().Message ?? e.Message}")
            .Distinct()
            .Take(5));

    /// <summary>Two digits replicas and a gateway in front of them; runs <paramref name="scenario"/> and stops whatever is left.</summary>
    private static async Task WithTwoReplicasAsync(Func<Replicas, Task> scenario)
    {
        var started = await Task.WhenAll(InferenceServer.StartAsync(RepoPaths.Zoo), InferenceServer.StartAsync(RepoPaths.Zoo));
        var replicas = new Replicas(started[0], started[1]);
        try
        {
            var settings = new GatewaySettings().Model(Digits.Model, replicas.Victim.Address, replicas.Survivor.Address);
            replicas.Gateway = await GatewayServer.StartAsync(settings.ToDictionary());
            await replicas.Gateway.WaitUntilServingAsync(Digits.Model);
            Assert.True(replicas.Gateway.Services.GetRequiredService<ModelRouter>().TryGet(Digits.Model, out var set));
            replicas.VictimInGateway = set.Destinations.Single(d => d.Address.Port == replicas.Victim.Address.Port);
            await scenario(replicas);
        }
        finally
        {
            await replicas.DisposeAsync();
        }
    }

    /// <summary>Stops the victim; how long until the gateway took it out of rotation.</summary>
    private static async Task<TimeSpan> KillVictimAsync(Replicas replicas)
    {
        var leaving = Eventually.UntilAsync(() => !replicas.VictimInGateway.IsHealthy, "the stopped replica leaves rotation");
        await replicas.StopVictimAsync();
        return await leaving;
    }

    /// <summary>Starts the victim again on its port; how long until the gateway put it back, and how many of 100 calls it then served.</summary>
    private static async Task<(TimeSpan Back, ulong Served)> ReviveVictimAsync(Replicas replicas, GRPCInferenceService.GRPCInferenceServiceClient client)
    {
        var revived = await replicas.ReviveVictimAsync();
        Assert.Equal(replicas.Victim.Address.Port, revived.Address.Port);
        var back = await Eventually.UntilAsync(() => replicas.VictimInGateway.IsHealthy, "the restarted replica returns to rotation");
        await Task.WhenAll(Enumerable.Range(0, 100).Select(i => client.ModelInferAsync(Digits.Request(i), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct).ResponseAsync));
        return (back, await Digits.InferenceCountAsync(revived));
    }

    [Fact]
    public async Task Destination_ReplicaStoppedThenRestartedOnSamePort_LeavesAndReturnsToRotation()
    {
        await WithTwoReplicasAsync(async replicas =>
        {
            var client = new GRPCInferenceService.GRPCInferenceServiceClient(replicas.Gateway!.Channel);

            var leftAfter = await KillVictimAsync(replicas);

            // Out of rotation: the model still serves, on the survivor alone.
            Assert.False(replicas.VictimInGateway.IsHealthy);
            await replicas.Gateway.WaitUntilServingAsync(Digits.Model);
            Assert.True((await client.ServerReadyAsync(new ServerReadyRequest(), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct)).Ready);
            var before = await Digits.InferenceCountAsync(replicas.Survivor);
            for (var i = 0; i < 20; i++)
            {
                await client.ModelInferAsync(Digits.Request(i), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);
            }

            Assert.Equal(before + 20, await Digits.InferenceCountAsync(replicas.Survivor));

            var (backAfter, served) = await ReviveVictimAsync(replicas, client);
            Report($"stopped replica out of rotation {leftAfter.TotalMilliseconds:F0} ms after the stop began; restarted on the same port, back in rotation {backAfter.TotalMilliseconds:F0} ms after it listened; it served {served} of the next 100 calls.");
            Assert.True(served > 0, "The restarted replica got no calls.");
        });
    }

    [Fact]
    public async Task ModelInfer_ReplicaKilledDuringLoad_NoCallFailsAndReplicaReturns()
    {
        await WithTwoReplicasAsync(async replicas =>
        {
            var gateway = replicas.Gateway!;
            var client = new GRPCInferenceService.GRPCInferenceServiceClient(gateway.Channel);
            var failures = new ConcurrentQueue<string>();
            var next = -1;
            var completed = 0;
            var thirdDone = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            async Task CallerAsync()
            {
                for (var i = Interlocked.Increment(ref next); i < Requests; i = Interlocked.Increment(ref next))
                {
                    try
                    {
                        var reply = await client.ModelInferAsync(Digits.Request(i), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);
                        if (Digits.LogitCount(reply) != Digits.Classes)
                        {
                            failures.Enqueue($"call {i}: {Digits.LogitCount(reply)} logits");
                        }
                    }
                    catch (RpcException e)
                    {
                        failures.Enqueue($"call {i}: {e.StatusCode} {e.Status.Detail}");
                    }

                    if (Interlocked.Increment(ref completed) == Requests / 3)
                    {
                        thirdDone.TrySetResult();
                    }
                }
            }

            // The victim is stopped once a third of the calls have completed; the callers keep going.
            var servedBeforeKill = 0UL;
            var completedAtKill = 0;
            var leftAfter = TimeSpan.Zero;
            async Task KillAsync()
            {
                await thirdDone.Task;
                servedBeforeKill = await Digits.InferenceCountAsync(replicas.Victim);
                completedAtKill = Volatile.Read(ref completed);
                leftAfter = await KillVictimAsync(replicas);
            }

            await Task.WhenAll(Enumerable.Range(0, Callers).Select(_ => CallerAsync()).Append(KillAsync())).WaitAsync(TimeSpan.FromSeconds(60), Rpc.Ct);

            var transportRetries = gateway.Logs.Find(ForwarderCategory, ReplicaFailedEvent).Count;
            var unavailableRetries = gateway.Logs.Find(ForwarderCategory, RetryingUnavailableEvent).Count;
            Report($"{Requests} calls from {Callers} callers; victim stopped after {completedAtKill} had completed (it had served {servedBeforeKill}); "
                + $"failed: {failures.Count}; transport failures the gateway saw: {transportRetries}, trailers-only UNAVAILABLE retried: {unavailableRetries}; "
                + $"victim out of rotation {leftAfter.TotalMilliseconds:F0} ms after the stop began.");
            Assert.True(failures.IsEmpty, $"{failures.Count} calls failed: {string.Join("; ", failures.Take(3))}. Gateway warnings: {Warnings(gateway)}");
            Assert.True(servedBeforeKill > 0, "The victim served nothing before it was stopped.");
            Assert.False(replicas.VictimInGateway.IsHealthy);
            Assert.True((await client.ServerReadyAsync(new ServerReadyRequest(), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct)).Ready);

            var (backAfter, served) = await ReviveVictimAsync(replicas, client);
            Report($"restarted on the same port: back in rotation {backAfter.TotalMilliseconds:F0} ms after it listened; it served {served} of the next 100 calls.");
            Assert.True(served > 0, "The restarted replica got no calls.");
        });
    }

    /// <summary>The replicas of one scenario: the one to kill, the one that stays, and the gateway.</summary>
    private sealed class Replicas(InferenceServer victim, InferenceServer survivor) : IAsyncDisposable
    {
        private bool _victimStopped;
        private InferenceServer? _revived;

        public InferenceServer Victim { get; } = victim;

        public InferenceServer Survivor { get; } = survivor;

        public GatewayServer? Gateway { get; set; }

        /// <summary>The gateway's view of the victim (same address before and after the restart).</summary>
        public Destination VictimInGateway { get; set; } = null!;

        public async Task StopVictimAsync()
        {
            _victimStopped = true;
            await Victim.DisposeAsync();
        }

        public async Task<InferenceServer> ReviveVictimAsync()
        {
            _revived = await InferenceServer.StartAsync(RepoPaths.Zoo, port: Victim.Address.Port);
            return _revived;
        }

        public async ValueTask DisposeAsync()
        {
            if (Gateway is not null)
            {
                await Gateway.DisposeAsync();
            }

            if (!_victimStopped)
            {
                await Victim.DisposeAsync();
            }

            await Survivor.DisposeAsync();
            if (_revived is not null)
            {
                await _revived.DisposeAsync();
            }
        }
    }
}
