using EffServe.Inference.Tests.Support;
using EffServe.Testing;
using Grpc.Core;
using Microsoft.Extensions.Logging;

namespace EffServe.Inference.Tests;

/// <summary>
/// Request bodies that are not valid protobuf, sent byte by byte: every service method answers
/// INVALID_ARGUMENT saying which message it expected and what is wrong, and the service logs one
/// short line per call, with no stack trace.
/// </summary>
public sealed class MalformedProtobufTests : IClassFixture<LoggedDigitsServerFixture>, IDisposable
{
    /// <summary>InferenceLog.MalformedRequest.</summary>
    private const int MalformedRequestEvent = 40;

    private readonly LoggedDigitsServerFixture _server;
    private readonly RawGrpcClient _raw;

    public MalformedProtobufTests(LoggedDigitsServerFixture server)
    {
        _server = server;
        _raw = new RawGrpcClient(server.Server.Address);
    }

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public static TheoryData<string, byte[]> Malformed => new()
    {
        // Field 4 (inputs), length-delimited, whose length varint never ends.
        { "truncated varint", [0x22, 0x80, 0x80] },
        // Field 1 (model_name) claims 16 bytes; 2 follow.
        { "length past the end", [0x0A, 0x10, (byte)'d', (byte)'i'] },
        // Field 1 with wire type 7, which does not exist.
        { "invalid wire type", [0x0F, 0x01] },
        // Field 2 (model_version) as a 32-bit fixed value, the model name as it should be: the field is skipped as unknown.
        { "wrong wire type for a known field", [0x15, 0x01, 0x02, 0x03, 0x04] },
        // Field 1 (model_name) holding bytes that are not UTF-8.
        { "invalid UTF-8 in a string field", [0x0A, 0x03, 0xC3, 0x28, 0xFF] },
        // Field 15, start-group, nested 1,000 deep and never ended.
        { "deeply nested groups", Enumerable.Repeat((byte)0x7B, 1000).ToArray() },
        // Field 4 (inputs) holding an input whose own field 3 (shape) is cut short.
        { "embedded message cut short", [0x22, 0x04, 0x1A, 0x05, 0x01, 0x02] },
        // A tag of field number 0.
        { "field number zero", [0x02, 0x00] },
    };

    [Theory]
    [MemberData(nameof(Malformed))]
    public async Task ModelInfer_MalformedBody_InvalidArgumentWithMessage(string what, byte[] message)
    {
        var answer = await _raw.CallAsync(RawGrpcClient.Inference + "ModelInfer", RawGrpcClient.Frame(message), cancellationToken: Ct);

        Assert.True(answer.Status == StatusCode.InvalidArgument, $"{what}: {answer.Status} {answer.Message}");
        Assert.False(string.IsNullOrWhiteSpace(answer.Message), what);
    }

    [Theory]
    [MemberData(nameof(Malformed))]
    public async Task ModelInfer_MalformedBodyGzip_InvalidArgumentWithMessage(string what, byte[] message)
    {
        var answer = await _raw.CallAsync(RawGrpcClient.Inference + "ModelInfer", RawGrpcClient.Frame(RawGrpcClient.Gzip(message), compressed: true), new Dictionary<string, string> { ["grpc-encoding"] = "gzip" }, Ct);

        Assert.True(answer.Status == StatusCode.InvalidArgument, $"{what}: {answer.Status} {answer.Message}");
        Assert.False(string.IsNullOrWhiteSpace(answer.Message), what);
    }

    [Fact]
    public async Task ModelInfer_TruncatedBody_MessageNamesTheTypeAndTheReason()
    {
        var answer = await _raw.CallAsync(RawGrpcClient.Inference + "ModelInfer", RawGrpcClient.Frame([0x0A, 0x10, (byte)'d']), cancellationToken: Ct);

        Assert.Equal(StatusCode.InvalidArgument, answer.Status);
        Assert.StartsWith("The request is not a valid inference.ModelInferRequest: ", answer.Message, StringComparison.Ordinal);
        Assert.Contains("truncated", answer.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("/inference.GRPCInferenceService/ModelMetadata", "inference.ModelMetadataRequest")]
    [InlineData("/inference.GRPCInferenceService/ModelStreamInfer", "inference.ModelInferRequest")]
    [InlineData("/inference.GRPCInferenceService/ServerLive", "inference.ServerLiveRequest")]
    [InlineData("/effserve.v1.ZooService/ListModels", "effserve.v1.ListModelsRequest")]
    [InlineData("/effserve.v1.JobService/SubmitJob", "effserve.v1.SubmitJobRequest")]
    [InlineData("/effserve.v1.JobService/StreamJobResults", "effserve.v1.StreamJobResultsRequest")]
    [InlineData("/grpc.health.v1.Health/Check", "grpc.health.v1.HealthCheckRequest")]
    public async Task EveryMethod_TruncatedBody_InvalidArgumentNamingItsMessage(string method, string type)
    {
        var answer = await _raw.CallAsync(method, RawGrpcClient.Frame([0x0A, 0x10, (byte)'x']), cancellationToken: Ct);

        Assert.True(answer.Status == StatusCode.InvalidArgument, $"{method}: {answer.Status} {answer.Message}");
        Assert.StartsWith($"The request is not a valid {type}: ", answer.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task MalformedBodies_LogOneShortLineEachAndNoStackTrace()
    {
        var logs = _server.Captured;
        var before = logs.Entries.Count;
        var bodies = Malformed.Select(row => row.Data.Item2).ToList();
        var refused = 0;
        foreach (var body in bodies)
        {
            var answer = await _raw.CallAsync(RawGrpcClient.Inference + "ModelInfer", RawGrpcClient.Frame(body), cancellationToken: Ct);
            Assert.Equal(StatusCode.InvalidArgument, answer.Status);
            refused += answer.Message.StartsWith("The request is not a valid", StringComparison.Ordinal) ? 1 : 0;
        }

        var logged = logs.Entries.Skip(before).ToList();
        Assert.All(logged, e => Assert.True(e.Exception is null, $"{e.Category} logged an exception: {e.Message}\n{e.Exception}"));
        Assert.All(logged, e => Assert.True(e.Level < LogLevel.Warning, $"{e.Category} logged at {e.Level}: {e.Message}"));
        var lines = logged.Where(e => e.EventId.Id == MalformedRequestEvent).ToList();
        Assert.Equal(refused, lines.Count);
        Assert.All(lines, e =>
        {
            Assert.Equal(LogLevel.Debug, e.Level);
            Assert.DoesNotContain('\n', e.Message);
            Assert.True(e.Message.Length < 700, e.Message);
        });
    }

    [Fact]
    public async Task ModelInfer_AfterMalformedBodies_WellFormedRequestSucceeds()
    {
        foreach (var row in Malformed)
        {
            await _raw.CallAsync(RawGrpcClient.Inference + "ModelInfer", RawGrpcClient.Frame(row.Data.Item2), cancellationToken: Ct);
        }

        var response = await _server.Inference.ModelInferAsync(Wire.DigitsEvalRaw(0, 1), cancellationToken: Ct);

        Assert.Single(response.Outputs);
    }

    public void Dispose() => _raw.Dispose();
}
