using EffServe.Contracts.Inference;
using EffServe.Inference.Tests.Support;
using EffServe.Testing;
using Grpc.Core;

namespace EffServe.Inference.Tests;

/// <summary>The configured message size limit, on a server of its own.</summary>
public sealed class LimitsTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task ModelInfer_RequestAboveMaxMessageBytes_ResourceExhausted()
    {
        await using var server = await InferenceServer.StartAsync(RepoPaths.Zoo, new Dictionary<string, string?> { ["EffServe:Inference:MaxMessageBytes"] = "4096" });
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(server.Channel);

        // 64 samples × 256 bytes = 16 KiB of pixels, four times the limit.
        await RpcAssert.FailsAsync(
            StatusCode.ResourceExhausted,
            () => client.ModelInferAsync(Wire.DigitsEvalRaw(0, 64), cancellationToken: Ct).ResponseAsync,
            "exceeds the maximum configured message size");

        // The connection and the server survive it: a request under the limit succeeds.
        var small = await client.ModelInferAsync(Wire.DigitsEvalRaw(0, 8), cancellationToken: Ct);
        Assert.Equal([8L, 10], Assert.Single(small.Outputs).Shape);
    }
}
