using EffServe.Contracts.Inference;
using EffServe.Gateway.Routing;
using EffServe.Gateway.Tests.Support;
using EffServe.Testing;
using Grpc.Core;
using Grpc.Health.V1;
using Microsoft.Extensions.DependencyInjection;

namespace EffServe.Gateway.Tests;

/// <summary>Replicas that refuse or are gone: the retry on another replica, and the status when none is left.</summary>
[Collection(nameof(OnSharedReplicas))]
public sealed class RetryTests(SharedReplicas shared)
{
    private const string ForwarderCategory = "EffServe.Gateway.Forwarding.ModelCallForwarder";
    private const int ReplicaFailedEvent = 2;
    private const int RetryingUnavailableEvent = 3;

    [Fact]
    public async Task ModelInfer_ReplicaAnswersTrailersOnlyUnavailable_RetriedOnOtherReplica()
    {
        await using var refusing = await FakeBackend.StartAsync(Digits.Model, FakeAnswer.Unavailable);
        var settings = new GatewaySettings().Model(Digits.Model, refusing.Address, shared.First.Address);
        await using var gateway = await GatewayServer.StartAsync(settings.ToDictionary());
        await gateway.WaitUntilServingAsync(Digits.Model);
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(gateway.Channel);

        // Power of two choices between two idle replicas picks either; 24 calls all but surely try the refusing one.
        for (var i = 0; i < 24; i++)
        {
            var reply = await client.ModelInferAsync(Digits.Request(i), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);
            Assert.Equal(Digits.Classes, Digits.LogitCount(reply));
        }

        Assert.NotEmpty(refusing.Calls);
        Assert.Equal(refusing.Calls.Count, gateway.Logs.Find(ForwarderCategory, RetryingUnavailableEvent).Count);
    }

    [Fact]
    public async Task ModelMetadata_OnlyReplicaAnswersUnavailable_ItsStatusAndMessageReachTheClientUnchanged()
    {
        // A replica's own refusal says why (a missing provider, a model loading); with no other
        // replica to try, the gateway passes it on instead of one of its own.
        await using var refusing = await FakeBackend.StartAsync("lonely", FakeAnswer.Unavailable);
        await using var gateway = await GatewayServer.StartAsync(new GatewaySettings().Model("lonely", refusing.Address).ToDictionary());
        await gateway.WaitUntilServingAsync("lonely");
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(gateway.Channel);

        await Rpc.FailsAsync(StatusCode.Unavailable, () => client.ModelMetadataAsync(new ModelMetadataRequest { Name = "lonely" }, deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct).ResponseAsync, "fake replica is unavailable");

        Assert.Single(refusing.Calls);
    }

    [Fact]
    public async Task ModelInfer_EveryReplicaDown_UnavailableNamingModel()
    {
        var dead = new[] { LoopbackPorts.Unused(), LoopbackPorts.Unused() }.Select(p => new Uri($"http://127.0.0.1:{p}")).ToArray();
        await using var gateway = await GatewayServer.StartAsync(new GatewaySettings().Model(Digits.Model, dead).ToDictionary());
        await gateway.WaitForHealthAsync(Digits.Model, HealthCheckResponse.Types.ServingStatus.NotServing, TimeSpan.FromSeconds(15));
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(gateway.Channel);

        await Rpc.FailsAsync(StatusCode.Unavailable, () => client.ModelInferAsync(Digits.Request(0), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct).ResponseAsync, "'digits'");
        var ready = await client.ServerReadyAsync(new ServerReadyRequest(), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);
        var live = await client.ServerLiveAsync(new ServerLiveRequest(), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);
        var health = await new Health.HealthClient(gateway.Channel).CheckAsync(new HealthCheckRequest(), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);

        Assert.False(ready.Ready);
        Assert.True(live.Live);
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.NotServing, health.Status);
    }

    [Fact]
    public async Task ModelInfer_OneReplicaNeverListening_ProbeTakesItOutAndEveryCallSucceeds()
    {
        var dead = new Uri($"http://127.0.0.1:{LoopbackPorts.Unused()}");
        var settings = new GatewaySettings().Model(Digits.Model, dead, shared.First.Address);
        await using var gateway = await GatewayServer.StartAsync(settings.ToDictionary());
        Assert.True(gateway.Services.GetRequiredService<ModelRouter>().TryGet(Digits.Model, out var replicas));
        var deadInGateway = replicas.Destinations.Single(d => d.Address.Port == dead.Port);
        await Eventually.UntilAsync(() => !deadInGateway.IsHealthy, "the probe takes the silent replica out");
        await gateway.WaitUntilServingAsync(Digits.Model);
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(gateway.Channel);

        for (var i = 0; i < 16; i++)
        {
            var reply = await client.ModelInferAsync(Digits.Request(i), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);
            Assert.Equal(Digits.Classes, Digits.LogitCount(reply));
        }

        Assert.Empty(gateway.Logs.Find(ForwarderCategory, ReplicaFailedEvent)); // no call was sent its way
    }
}
