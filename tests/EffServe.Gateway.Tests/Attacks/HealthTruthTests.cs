using EffServe.Contracts.Inference;
using EffServe.Gateway.Tests.Support;
using EffServe.Testing;
using Grpc.Core;
using Grpc.Health.V1;

namespace EffServe.Gateway.Tests.Attacks;

/// <summary>
/// Health that tells the truth: with every replica of a model stopped, grpc.health.v1 says
/// NOT_SERVING for the model and for the gateway as a whole, and calls are refused UNAVAILABLE
/// with a message. Replicas of its own, since it stops them.
/// </summary>
[Collection(nameof(UnderAttack))]
public sealed class HealthTruthTests
{
    [Fact]
    public async Task EveryReplicaStopped_HealthNotServingAndCallsUnavailableWithMessage()
    {
        var started = await Task.WhenAll(InferenceServer.StartAsync(RepoPaths.Zoo), InferenceServer.StartAsync(RepoPaths.Zoo));
        var stopped = false;
        try
        {
            var settings = new GatewaySettings().Model(Digits.Model, started[0].Address, started[1].Address);
            await using var gateway = await GatewayServer.StartAsync(settings.ToDictionary());
            await gateway.WaitUntilServingAsync(Digits.Model);
            await gateway.WaitUntilServingAsync("");
            var client = new GRPCInferenceService.GRPCInferenceServiceClient(gateway.Channel);
            await client.ModelInferAsync(Digits.Request(0), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);

            await Task.WhenAll(started.Select(r => r.DisposeAsync().AsTask()));
            stopped = true;

            await gateway.WaitForHealthAsync(Digits.Model, HealthCheckResponse.Types.ServingStatus.NotServing, TimeSpan.FromSeconds(20));
            await gateway.WaitForHealthAsync("", HealthCheckResponse.Types.ServingStatus.NotServing, TimeSpan.FromSeconds(20));
            var error = await Rpc.FailsAsync(StatusCode.Unavailable, () => client.ModelInferAsync(Digits.Request(1), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct).ResponseAsync, Digits.Model);
            AttackContext.Report($"with every replica stopped: {error.StatusCode} {error.Status.Detail}");
            var ready = await client.ServerReadyAsync(new ServerReadyRequest(), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);
            Assert.False(ready.Ready);
        }
        finally
        {
            if (!stopped)
            {
                await Task.WhenAll(started.Select(r => r.DisposeAsync().AsTask()));
            }
        }
    }
}
