using EffServe.Contracts.Inference;
using EffServe.Gateway.Tests.Support;
using EffServe.Testing;
using Grpc.Core;

namespace EffServe.Gateway.Tests;

/// <summary>
/// MaxCallsPerReplica: a replica gets at most that many calls at once through the gateway; the
/// rest are refused at once with RESOURCE_EXHAUSTED and a retry hint, not queued past their deadline.
/// </summary>
public sealed class ReplicaLimitTests
{
    [Fact]
    public async Task MoreCallsThanTheReplicaMayTake_ExtraRefusedAtOnceWithRetryHint_OthersServed()
    {
        await using var slow = await FakeBackend.StartAsync("slow", FakeAnswer.SlowMetadata);
        var settings = new GatewaySettings().Model("slow", slow.Address).Set("MaxCallsPerReplica", "2");
        await using var gateway = await GatewayServer.StartAsync(settings.ToDictionary());
        await gateway.WaitUntilServingAsync("slow");
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(gateway.Channel);
        var request = new ModelMetadataRequest { Name = "slow" };

        // Two calls take the replica's two places (each held 500 ms by the fake); the next three
        // find no room.
        var held = Enumerable.Range(0, 2).Select(_ => client.ModelMetadataAsync(request, deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct).ResponseAsync).ToList();
        await Eventually.UntilAsync(() => slow.Calls.Count == 2, "the two calls reach the replica");
        var refused = new List<RpcException>();
        for (var i = 0; i < 3; i++)
        {
            refused.Add(await Assert.ThrowsAsync<RpcException>(() => client.ModelMetadataAsync(request, deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct).ResponseAsync));
        }

        var served = await Task.WhenAll(held);
        var after = await client.ModelMetadataAsync(request, deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);

        Assert.All(refused, e =>
        {
            Assert.Equal(StatusCode.ResourceExhausted, e.StatusCode);
            Rpc.AssertMentions(e.Status.Detail, "MaxCallsPerReplica", "retry");
            Assert.Equal("100", e.Trailers.GetValue("grpc-retry-pushback-ms"));
        });
        Assert.All(served, r => Assert.Equal(FakeBackend.FakePlatform, r.Platform));
        Assert.Equal(FakeBackend.FakePlatform, after.Platform);
        Assert.Equal(3, slow.Calls.Count); // the refused calls never reached the replica
    }

    [Fact]
    public async Task MaxCallsPerReplicaBelowOne_SettingRefused()
    {
        var settings = new GatewaySettings().Model("x", new Uri("http://127.0.0.1:1")).Set("MaxCallsPerReplica", "0");

        var refused = await Assert.ThrowsAsync<InvalidOperationException>(() => GatewayServer.StartAsync(settings.ToDictionary()));

        Assert.Contains("MaxCallsPerReplica", refused.Message, StringComparison.Ordinal);
    }
}
