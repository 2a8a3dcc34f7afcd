using EffServe.Contracts.Inference;
using EffServe.Gateway.Tests.Support;
using EffServe.Testing;

namespace EffServe.Gateway.Tests;

/// <summary>The gateway's connections to a replica: more of them when one is full.</summary>
public sealed class BackendConnectionTests
{
    /// <summary>
    /// Kestrel lets 100 streams share one HTTP/2 connection; the 101st concurrent call needs the
    /// gateway to open a second connection to the same replica.
    /// </summary>
    [Fact]
    public async Task ModelMetadata_MoreConcurrentCallsThanOneConnectionCarries_AllSucceed()
    {
        await using var fake = await FakeBackend.StartAsync("slow", FakeAnswer.SlowMetadata);
        await using var gateway = await GatewayServer.StartAsync(new GatewaySettings().Model("slow", fake.Address).ToDictionary());
        await gateway.WaitUntilServingAsync("slow");
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(gateway.Channel);

        var calls = Enumerable.Range(0, 150)
            .Select(_ => client.ModelMetadataAsync(new ModelMetadataRequest { Name = "slow" }, deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct).ResponseAsync)
            .ToList();
        var outcomes = await Task.WhenAll(calls.Select(c => Record.ExceptionAsync(() => c).AsTask()));

        var failed = outcomes.OfType<Grpc.Core.RpcException>().ToList();
        Assert.True(failed.Count == 0, $"{failed.Count} of 150 calls failed, e.g. {failed.FirstOrDefault()?.Status}. Gateway log: {string.Join("; ", gateway.Logs.Entries.Where(e => e.Level >= Microsoft.Extensions.Logging.LogLevel.Information).Select(e => e.Message).Where(m => m.Contains("replica", StringComparison.Ordinal)).Distinct().Take(5))}");
        Assert.Equal(150, fake.Calls.Count);
    }
}
