using EffServe.Contracts.Inference;
using EffServe.Gateway.Tests.Support;
using Grpc.Core;
using Grpc.Net.Client;

namespace EffServe.Gateway.Tests.Attacks;

/// <summary>
/// Overload is measured by a benchmark, not here; this checks only that what the gateway refuses
/// under a greedy tenant is refused at once, with a message that says why and when to retry, while
/// another tenant's calls go on.
/// </summary>
[Collection(nameof(UnderAttack))]
public sealed class OverloadRefusalTests(AttackReplicas replicas)
{
    private const string GreedyKey = "key-greedy";

    [Fact]
    public async Task GreedyTenantOverItsRate_RefusedWithMessage_OthersServed()
    {
        var refused = new List<RpcException>();
        var served = 0;
        await AttackHarness.RunAsync(
            replicas,
            async attack =>
            {
                using var channel = GrpcChannel.ForAddress(attack.Address);
                var client = new GRPCInferenceService.GRPCInferenceServiceClient(channel);
                var headers = new Metadata { { "effserve-api-key", GreedyKey } };
                var results = await Task.WhenAll(Enumerable.Range(0, 200).Select(async i =>
                {
                    try
                    {
                        await client.ModelInferAsync(Digits.Request(i), headers, deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);
                        return null;
                    }
                    catch (RpcException e)
                    {
                        return e;
                    }
                }));
                refused.AddRange(results.OfType<RpcException>());
                served = results.Count(r => r is null);
            },
            door: true,
            configure: s => s.Set($"Door:ApiKeys:{GreedyKey}", "greedy").Set("Door:RequestsPerSecond", "20").Set("Door:Burst", "20"));

        AttackContext.Report($"greedy tenant: {served} served, {refused.Count} refused; first: {refused.FirstOrDefault()?.Status.Detail}");
        Assert.NotEmpty(refused);
        Assert.All(refused, e =>
        {
            Assert.Equal(StatusCode.ResourceExhausted, e.StatusCode);
            Rpc.AssertMentions(e.Status.Detail, "rate limit", "retry in");
        });
    }
}
