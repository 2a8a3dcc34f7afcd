using EffServe.Contracts.Inference;
using EffServe.Inference.Serving;
using EffServe.Inference.Tests.Support;
using EffServe.Testing;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.DependencyInjection;

namespace EffServe.Inference.Tests;

/// <summary>
/// A call that cannot finish before its gRPC deadline ends in DEADLINE_EXCEEDED with a message that
/// says why and what to do, read from the server's own trailers (a client library makes up its own
/// "Deadline Exceeded" when its timer fires first).
/// </summary>
public sealed class DeadlineMessageTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static byte[] Body(ModelInferRequest request) => RawGrpcClient.Frame(request.ToByteArray());

    [Fact]
    public async Task ModelInfer_OneMillisecondDeadline_DeadlineExceededOrAnsweredAndNeverWithoutMessage()
    {
        await using var server = await InferenceServer.StartAsync(RepoPaths.Zoo);
        using var raw = new RawGrpcClient(server.Address);

        for (var i = 0; i < 20; i++)
        {
            var answer = await raw.CallAsync(RawGrpcClient.Inference + "ModelInfer", Body(Wire.DigitsEvalRaw(0, 64)), new Dictionary<string, string> { ["grpc-timeout"] = "1m" }, Ct);

            Assert.True(answer.Status is StatusCode.OK or StatusCode.DeadlineExceeded, $"A 1 ms deadline ended in {answer.Status}: {answer.Message}");
            Assert.True(answer.Status == StatusCode.OK || answer.Message.Length > 0, "DEADLINE_EXCEEDED came without a message.");
        }
    }

    [Fact]
    public async Task ModelInfer_DeadlinePassesWhileQueued_DeadlineExceededWithMessage()
    {
        // The test holds the only run slot, so the call waits in the queue until its deadline comes.
        await using var server = await InferenceServer.StartAsync(RepoPaths.Zoo, new Dictionary<string, string?> { ["EffServe:Inference:MaxConcurrentRuns"] = "1" });
        using var raw = new RawGrpcClient(server.Address);
        var slots = server.Services.GetRequiredService<RunSlots>();
        await slots.WaitAsync(Ct);
        try
        {
            var request = Wire.DigitsEvalRaw(0, 1);
            request.Parameters.Add("effserve.slo_ms", Wire.Real(600_000));

            var answer = await raw.CallAsync(RawGrpcClient.Inference + "ModelInfer", Body(request), new Dictionary<string, string> { ["grpc-timeout"] = "300m" }, Ct);

            Assert.Equal(StatusCode.DeadlineExceeded, answer.Status);
            Assert.False(string.IsNullOrWhiteSpace(answer.Message), "DEADLINE_EXCEEDED came without a message.");
        }
        finally
        {
            slots.Release();
        }

        var next = await new GRPCInferenceService.GRPCInferenceServiceClient(server.Channel).ModelInferAsync(Wire.DigitsEvalRaw(0, 1), cancellationToken: Ct);
        Assert.Single(next.Outputs);
    }

    [Fact]
    public async Task ModelInfer_DeadlineGoneOnArrival_ServiceAnswersWithItsOwnMessage()
    {
        // The service's clock runs an hour ahead of grpc-dotnet's, so a call with 30 s left reaches
        // the model with its deadline long gone, yet grpc-dotnet's own deadline timer is far off:
        // what answers is the service, deterministically.
        await using var server = await InferenceServer.StartAsync(RepoPaths.Zoo, services: s => s.AddSingleton<TimeProvider>(new SkewedClock(TimeSpan.FromHours(1))));
        using var raw = new RawGrpcClient(server.Address);

        var answer = await raw.CallAsync(RawGrpcClient.Inference + "ModelInfer", Body(Wire.DigitsEvalRaw(0, 1)), new Dictionary<string, string> { ["grpc-timeout"] = "30S" }, Ct);

        Assert.Equal(StatusCode.DeadlineExceeded, answer.Status);
        Assert.StartsWith("Model 'digits' cannot answer within the call's gRPC deadline:", answer.Message, StringComparison.Ordinal);
        Assert.Contains("retry with a longer deadline", answer.Message, StringComparison.Ordinal);
    }

    /// <summary>The system's clock, shifted by a fixed offset.</summary>
    private sealed class SkewedClock(TimeSpan offset) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => System.GetUtcNow() + offset;
    }
}
