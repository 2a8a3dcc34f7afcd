using EffServe.Contracts.Inference;
using EffServe.Gateway.Routing;
using EffServe.Gateway.Tests.Support;
using EffServe.Testing;
using Grpc.Core;
using Grpc.Health.V1;
using Microsoft.Extensions.DependencyInjection;
using ServingStatus = Grpc.Health.V1.HealthCheckResponse.Types.ServingStatus;

namespace EffServe.Gateway.Tests;

/// <summary>
/// The gateway's health against real servers: a replica too busy to answer its probe in time is
/// not taken for dead, a replica that is gone leaves rotation, and grpc.health.v1 (Check and
/// Watch) and ServerReady say what the rotation says at that moment.
/// </summary>
public sealed class HealthTests
{
    private const string WatcherCategory = "EffServe.Gateway.Routing.ReplicaWatcher";
    private const int ReplicaBusyEvent = 20;
    private const int ReplicaProbeFailedEvent = 21;
    private const int Threshold = 3;
    private const string OtherModel = "other";

    /// <summary>Longer than any probe waits: the fake's health check never answers in time.</summary>
    private static readonly TimeSpan s_slowProbe = TimeSpan.FromSeconds(30);

    /// <summary>Probes every 200 ms that wait 500 ms; three failed in a row take a replica out.</summary>
    private static GatewaySettings SlowProbeSettings(params Uri[] destinations) => new GatewaySettings()
        .Model(FakeModel, destinations)
        .Set("HealthCheckTimeout", "00:00:00.500")
        .Set("HealthCheckFailureThreshold", Threshold.ToString(System.Globalization.CultureInfo.InvariantCulture));

    private const string FakeModel = "busy";

    private static Destination InGateway(GatewayServer gateway, string model, Uri address)
    {
        Assert.True(gateway.Services.GetRequiredService<ModelRouter>().TryGet(model, out var replicas));
        return replicas.Destinations.Single(d => d.Address.Port == address.Port);
    }

    private static async Task<ServingStatus> CheckAsync(GatewayServer gateway, string service) =>
        (await new Health.HealthClient(gateway.Channel).CheckAsync(new HealthCheckRequest { Service = service }, deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct)).Status;

    private static Task<ModelMetadataResponse> MetadataAsync(GatewayServer gateway, string model) =>
        new GRPCInferenceService.GRPCInferenceServiceClient(gateway.Channel)
            .ModelMetadataAsync(new ModelMetadataRequest { Name = model }, deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct).ResponseAsync;

    private static async Task<bool> ReadyAsync(GatewayServer gateway) =>
        (await new GRPCInferenceService.GRPCInferenceServiceClient(gateway.Channel).ServerReadyAsync(new ServerReadyRequest(), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct)).Ready;

    [Fact]
    public async Task ModelMetadata_ProbeTimesOutWhileCallsAreAnswered_ReplicaStaysInRotation()
    {
        await using var busy = await FakeBackend.StartAsync(FakeModel, FakeAnswer.Metadata, healthDelay: s_slowProbe);
        await using var gateway = await GatewayServer.StartAsync(SlowProbeSettings(busy.Address).ToDictionary());
        var replica = InGateway(gateway, FakeModel, busy.Address);

        // Calls without pause until the replica has had more timed-out probes than would take it
        // out twice over had it answered nothing.
        var probesBefore = busy.HealthChecks;
        var calls = 0;
        while (busy.HealthChecks < probesBefore + (2 * Threshold) + 1)
        {
            var reply = await MetadataAsync(gateway, FakeModel);
            Assert.Equal(FakeBackend.FakePlatform, reply.Platform);
            if (++calls == 1)
            {
                Assert.True(replica.AnsweredWithin(Eventually.Patience), "The forwarder did not record the answered call (Destination.RecordSuccess), which keeps a busy replica in rotation.");
            }

            Assert.True(replica.IsHealthy, $"The busy replica left rotation after {calls} answered calls and {busy.HealthChecks - probesBefore} slow probes.");
        }

        Assert.Equal(ServingStatus.Serving, await CheckAsync(gateway, FakeModel));
        Assert.True(await ReadyAsync(gateway));
        Assert.NotEmpty(gateway.Logs.Find(WatcherCategory, ReplicaBusyEvent));
    }

    [Fact]
    public async Task ModelMetadata_ProbeTimesOutAndNoCalls_ReplicaLeavesAfterThresholdAndCallsAreRefused()
    {
        await using var busy = await FakeBackend.StartAsync(FakeModel, FakeAnswer.Metadata, healthDelay: s_slowProbe);
        await using var gateway = await GatewayServer.StartAsync(SlowProbeSettings(busy.Address).ToDictionary());
        var replica = InGateway(gateway, FakeModel, busy.Address);

        await Eventually.UntilAsync(() => !replica.IsHealthy, "the silent replica leaves rotation");

        Assert.True(busy.HealthChecks >= Threshold, $"Out of rotation after {busy.HealthChecks} probes.");
        Assert.Equal(Threshold, replica.ConsecutiveFailedProbes);
        Assert.NotEmpty(gateway.Logs.Find(WatcherCategory, ReplicaProbeFailedEvent));
        Assert.Equal(ServingStatus.NotServing, await CheckAsync(gateway, FakeModel));
        var refused = await Rpc.FailsAsync(StatusCode.Unavailable, () => MetadataAsync(gateway, FakeModel), $"'{FakeModel}'");
        AssertSaysNoReplicaAndRetry(refused.Status.Detail);
        Assert.Empty(busy.Calls);
    }

    [Fact]
    public async Task Health_OnlyReplicaOfModelKilled_ModelNotServingGatewayNotReadyCallsToldToRetry()
    {
        var victim = await InferenceServer.StartAsync(RepoPaths.Zoo);
        var victimStopped = false;
        try
        {
            await using var other = await FakeBackend.StartAsync(OtherModel, FakeAnswer.Metadata);
            var settings = new GatewaySettings().Model(Digits.Model, victim.Address).Model(OtherModel, other.Address);
            await using var gateway = await GatewayServer.StartAsync(settings.ToDictionary());
            await gateway.WaitUntilServingAsync("");
            var client = new GRPCInferenceService.GRPCInferenceServiceClient(gateway.Channel);
            Assert.Equal(Digits.Classes, Digits.LogitCount(await client.ModelInferAsync(Digits.Request(0), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct)));
            Assert.True(await ReadyAsync(gateway));

            victimStopped = true;
            await victim.DisposeAsync();
            await gateway.WaitForHealthAsync(Digits.Model, ServingStatus.NotServing, Eventually.Patience);

            Assert.Equal(ServingStatus.NotServing, await CheckAsync(gateway, ""));
            Assert.Equal(ServingStatus.Serving, await CheckAsync(gateway, OtherModel));
            Assert.False(await ReadyAsync(gateway));
            Assert.True((await client.ServerLiveAsync(new ServerLiveRequest(), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct)).Live);
            var refused = await Rpc.FailsAsync(StatusCode.Unavailable, () => client.ModelInferAsync(Digits.Request(1), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct).ResponseAsync, $"'{Digits.Model}'");
            AssertSaysNoReplicaAndRetry(refused.Status.Detail);
            Assert.Equal(OtherModel, (await MetadataAsync(gateway, OtherModel)).Name); // the other model still serves
        }
        finally
        {
            if (!victimStopped)
            {
                await victim.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task Watch_OnlyReplicaKilledThenRestarted_StreamsEachChange()
    {
        var victim = await InferenceServer.StartAsync(RepoPaths.Zoo);
        InferenceServer? revived = null;
        try
        {
            await using var gateway = await GatewayServer.StartAsync(new GatewaySettings().Model(Digits.Model, victim.Address).ToDictionary());
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(Rpc.Ct);
            var health = new Health.HealthClient(gateway.Channel);
            using var model = health.Watch(new HealthCheckRequest { Service = Digits.Model }, cancellationToken: stop.Token);
            using var whole = health.Watch(new HealthCheckRequest(), cancellationToken: stop.Token);
            Assert.Equal(ServingStatus.Serving, await NextAsync(model));
            Assert.Equal(ServingStatus.Serving, await NextAsync(whole));

            var port = victim.Address.Port;
            var stopped = victim;
            victim = null;
            await stopped.DisposeAsync();
            Assert.Equal(ServingStatus.NotServing, await NextAsync(model));
            Assert.Equal(ServingStatus.NotServing, await NextAsync(whole));

            revived = await InferenceServer.StartAsync(RepoPaths.Zoo, port: port);
            Assert.Equal(ServingStatus.Serving, await NextAsync(model));
            Assert.Equal(ServingStatus.Serving, await NextAsync(whole));
            await stop.CancelAsync();
        }
        finally
        {
            foreach (var server in new[] { victim, revived })
            {
                if (server is not null)
                {
                    await server.DisposeAsync();
                }
            }
        }
    }

    [Fact]
    public async Task Check_UnknownService_NotFoundNamingModels()
    {
        await using var backend = await FakeBackend.StartAsync(FakeModel, FakeAnswer.Metadata);
        await using var gateway = await GatewayServer.StartAsync(new GatewaySettings().Model(FakeModel, backend.Address).ToDictionary());

        await Rpc.FailsAsync(StatusCode.NotFound, () => CheckAsync(gateway, "nope"), "'nope'", FakeModel);
    }

    [Fact]
    public async Task Watch_UnknownService_ServiceUnknownAndStreamStaysOpen()
    {
        await using var backend = await FakeBackend.StartAsync(FakeModel, FakeAnswer.Metadata);
        await using var gateway = await GatewayServer.StartAsync(new GatewaySettings().Model(FakeModel, backend.Address).ToDictionary());
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(Rpc.Ct);
        using var watch = new Health.HealthClient(gateway.Channel).Watch(new HealthCheckRequest { Service = "nope" }, cancellationToken: stop.Token);

        Assert.Equal(ServingStatus.ServiceUnknown, await NextAsync(watch));
        var more = watch.ResponseStream.MoveNext(stop.Token);
        await Task.Delay(TimeSpan.FromMilliseconds(300), Rpc.Ct);
        Assert.False(more.IsCompleted, "The watch of an unknown service ended; it should stay open.");
        await stop.CancelAsync();
        await Assert.ThrowsAnyAsync<Exception>(() => more);
    }

    [Fact]
    public async Task CheckSettings_FailureThresholdZeroAndNoPenalty_BothRefused()
    {
        var settings = new GatewaySettings()
            .Model(FakeModel, new Uri("http://127.0.0.1:8001"))
            .Set("HealthCheckFailureThreshold", "0")
            .Set("PassiveHealthPenalty", "00:00:00");

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => GatewayServer.StartAsync(settings.ToDictionary()));

        Rpc.AssertMentions(error.Message, "EffServe:Gateway:HealthCheckFailureThreshold is 0", "EffServe:Gateway:PassiveHealthPenalty");
    }

    /// <summary>The next status a Watch sends; fails when none comes within <see cref="Eventually.Patience"/>.</summary>
    private static async Task<ServingStatus> NextAsync(AsyncServerStreamingCall<HealthCheckResponse> watch)
    {
        var next = watch.ResponseStream.MoveNext(Rpc.Ct);
        var first = await Task.WhenAny(next, Task.Delay(Eventually.Patience, Rpc.Ct));
        Assert.True(first == next, "The watch sent nothing new in time.");
        Assert.True(await next, "The watch ended.");
        return watch.ResponseStream.Current.Status;
    }

    private static void AssertSaysNoReplicaAndRetry(string message)
    {
        var lower = message.ToLowerInvariant();
        Assert.True(lower.Contains("replica", StringComparison.Ordinal) && lower.Contains("available", StringComparison.Ordinal), $"The refusal does not say no replica is available: {message}");
        Assert.True(lower.Contains("retry", StringComparison.Ordinal), $"The refusal does not say to retry: {message}");
    }
}
