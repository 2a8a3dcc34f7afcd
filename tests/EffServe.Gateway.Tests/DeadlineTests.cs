using EffServe.Contracts.Inference;
using EffServe.Gateway.Forwarding;
using EffServe.Gateway.Tests.Support;
using EffServe.Testing;
using Grpc.Core;

namespace EffServe.Gateway.Tests;

/// <summary>
/// The caller's deadline travels on, less the time spent in the gateway. A fake backend records the
/// grpc-timeout header that reached it.
/// </summary>
public sealed class DeadlineTests : IAsyncLifetime
{
    private const string Echo = "echo";

    private FakeBackend? _fake;
    private GatewayServer? _gateway;

    private FakeBackend Fake => _fake!;

    private GatewayServer Gateway => _gateway!;

    public async ValueTask InitializeAsync()
    {
        _fake = await FakeBackend.StartAsync(Echo, FakeAnswer.Metadata);
        _gateway = await GatewayServer.StartAsync(new GatewaySettings().Model(Echo, Fake.Address).ToDictionary());
        await Gateway.WaitUntilServingAsync(Echo);
    }

    public async ValueTask DisposeAsync()
    {
        if (_gateway is not null)
        {
            await _gateway.DisposeAsync();
        }

        if (_fake is not null)
        {
            await _fake.DisposeAsync();
        }
    }

    private static byte[] MetadataFrame => RawGrpc.Frame(new ModelMetadataRequest { Name = Echo });

    private static TimeSpan Parse(string? header)
    {
        Assert.True(GrpcTimeout.TryParse(header, out var timeout), $"The backend got grpc-timeout '{header}'.");
        return timeout;
    }

    [Fact]
    public async Task ModelMetadata_TenSecondDeadline_ReplicaGetsLessButSome()
    {
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(Gateway.Channel);

        var reply = await client.ModelMetadataAsync(new ModelMetadataRequest { Name = Echo }, deadline: Rpc.Deadline(10), cancellationToken: Rpc.Ct);

        Assert.Equal(FakeBackend.FakePlatform, reply.Platform);
        var forwarded = Parse(Assert.Single(Fake.Calls).GrpcTimeout);
        Assert.InRange(forwarded, TimeSpan.FromTicks(1), TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task ModelMetadata_ExactTimeoutHeader_ReducedByTimeInGateway()
    {
        var headers = new Dictionary<string, string> { ["grpc-timeout"] = "10S" };

        var reply = await RawGrpc.PostAsync(Gateway.Address, RawGrpc.Inference + "ModelMetadata", MetadataFrame, headers);

        Assert.Equal(StatusCode.OK, reply.Status);
        var call = Assert.Single(Fake.Calls);
        Assert.NotEqual("10S", call.GrpcTimeout);
        var forwarded = Parse(call.GrpcTimeout);
        Assert.True(forwarded > TimeSpan.Zero && forwarded < TimeSpan.FromSeconds(10), $"Forwarded {call.GrpcTimeout} for a 10S deadline.");
    }

    [Fact]
    public async Task ModelMetadata_NoDeadline_NoTimeoutForwarded()
    {
        var reply = await RawGrpc.PostAsync(Gateway.Address, RawGrpc.Inference + "ModelMetadata", MetadataFrame);

        Assert.Equal(StatusCode.OK, reply.Status);
        Assert.Null(Assert.Single(Fake.Calls).GrpcTimeout);
    }

    [Fact]
    public async Task ModelMetadata_DeadlineAlreadySpent_DeadlineExceededWithoutReachingReplica()
    {
        // A nanosecond is gone before the gateway looks at it. (The grpc-dotnet client would not
        // even send a call whose deadline has passed, so the header is written by hand.)
        var headers = new Dictionary<string, string> { ["grpc-timeout"] = "1n" };

        var reply = await RawGrpc.PostAsync(Gateway.Address, RawGrpc.Inference + "ModelMetadata", MetadataFrame, headers);

        Assert.Equal(StatusCode.DeadlineExceeded, reply.Status);
        Assert.Empty(Fake.Calls);
    }
}
