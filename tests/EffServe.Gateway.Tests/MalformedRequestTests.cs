using System.IO.Compression;
using EffServe.Contracts.Inference;
using EffServe.Gateway.Tests.Support;
using Google.Protobuf;
using Grpc.Core;

namespace EffServe.Gateway.Tests;

/// <summary>
/// Requests that are hard to read: broken frames, broken protobuf, compressed messages (read when
/// gzip or deflate, refused otherwise), no model, an unknown model, a message over the size limit.
/// Each gets a clear status; none crashes the gateway or hangs the call.
/// </summary>
[Collection(nameof(OnSharedReplicas))]
public sealed class MalformedRequestTests(SharedReplicas shared)
{
    private const string ModelInferPath = RawGrpc.Inference + "ModelInfer";

    private static readonly Marshaller<byte[]> s_bytes = Marshallers.Create(b => b, b => b);

    private readonly GRPCInferenceService.GRPCInferenceServiceClient _client = new(shared.Gateway.Channel);

    private Uri Gateway => shared.Gateway.Address;

    private static byte[] DigitsMessage => Digits.Request(0).ToByteArray();

    /// <summary>ModelInfer with a message whose bytes the test writes (the client still frames it properly).</summary>
    private Task<byte[]> ModelInferBytesAsync(byte[] message) =>
        shared.Gateway.Channel.CreateCallInvoker()
            .AsyncUnaryCall(new Method<byte[], byte[]>(MethodType.Unary, "inference.GRPCInferenceService", "ModelInfer", s_bytes, s_bytes), null, new CallOptions(deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct), message)
            .ResponseAsync;

    [Theory]
    [InlineData(new byte[0])]
    [InlineData(new byte[] { 0, 0, 0 })]
    public async Task ModelInfer_TruncatedPrefix_InvalidArgument(byte[] body)
    {
        var reply = await RawGrpc.PostAsync(Gateway, ModelInferPath, body);

        Assert.Equal(StatusCode.InvalidArgument, reply.Status);
        Rpc.AssertMentions(reply.Message, "gRPC frame");
    }

    [Fact]
    public async Task ModelInfer_FrameLongerThanBody_InvalidArgument()
    {
        var message = DigitsMessage;

        var reply = await RawGrpc.PostAsync(Gateway, ModelInferPath, RawGrpc.Frame(message, declaredLength: (uint)message.Length + 100));

        Assert.Equal(StatusCode.InvalidArgument, reply.Status);
        Rpc.AssertMentions(reply.Message, "frame");
    }

    [Fact]
    public async Task ModelStreamInfer_FrameLongerThanBody_InvalidArgument()
    {
        var message = DigitsMessage;

        var reply = await RawGrpc.PostAsync(Gateway, RawGrpc.Inference + "ModelStreamInfer", RawGrpc.Frame(message, declaredLength: (uint)message.Length + 100));

        Assert.Equal(StatusCode.InvalidArgument, reply.Status);
    }

    [Fact]
    public async Task ModelInfer_TwoFramesInUnaryCall_InvalidArgument()
    {
        // A client-streaming call on the unary method's path writes two well-formed frames.
        var method = new Method<byte[], byte[]>(MethodType.ClientStreaming, "inference.GRPCInferenceService", "ModelInfer", s_bytes, s_bytes);
        using var call = shared.Gateway.Channel.CreateCallInvoker().AsyncClientStreamingCall(method, null, new CallOptions(deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct));
        await call.RequestStream.WriteAsync(DigitsMessage, Rpc.Ct);
        await call.RequestStream.WriteAsync(DigitsMessage, Rpc.Ct);
        await call.RequestStream.CompleteAsync();

        await Rpc.FailsAsync(StatusCode.InvalidArgument, () => call.ResponseAsync, "exactly one message");
    }

    [Theory]
    [InlineData(new byte[] { 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF }, "tag")] // a tag varint that never ends
    [InlineData(new byte[] { 0x0A, 0x20, (byte)'d', (byte)'i' }, "field 1")] // model_name claims 32 bytes, 2 follow
    [InlineData(new byte[] { 0x2A, 0x80 }, "field 5")] // a length varint cut short
    [InlineData(new byte[] { 0x0F, 0x01 }, "wire type")] // wire type 7 does not exist
    [InlineData(new byte[] { 0x0A, 0x02, 0xC3, 0x28 }, "UTF-8")] // model_name is not UTF-8
    public async Task ModelInfer_InvalidProtobuf_InvalidArgument(byte[] message, string mentions)
    {
        await Rpc.FailsAsync(StatusCode.InvalidArgument, () => ModelInferBytesAsync(message), "well-formed", mentions);
    }

    [Fact]
    public async Task ModelInfer_CompressionFlagTwo_InvalidArgument()
    {
        var reply = await RawGrpc.PostAsync(Gateway, ModelInferPath, RawGrpc.Frame(DigitsMessage, flag: 2));

        Assert.Equal(StatusCode.InvalidArgument, reply.Status);
        Rpc.AssertMentions(reply.Message, "compression flag is 2");
    }

    [Fact]
    public async Task ModelInfer_GzipCompressedByClient_Routed()
    {
        var headers = new Metadata { { "grpc-internal-encoding-request", "gzip" } };

        var reply = await _client.ModelInferAsync(Digits.Request(5), headers, deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);

        Assert.Equal(Digits.Model, reply.ModelName);
        Assert.Equal(Digits.Classes, Digits.LogitCount(reply));
    }

    [Fact]
    public async Task ModelInfer_GzipFlagWithGarbage_InvalidArgument()
    {
        var headers = new Dictionary<string, string> { ["grpc-encoding"] = "gzip" };

        var reply = await RawGrpc.PostAsync(Gateway, ModelInferPath, RawGrpc.Frame([1, 2, 3, 4, 5, 6, 7, 8], flag: 1), headers);

        Assert.Equal(StatusCode.InvalidArgument, reply.Status);
        Rpc.AssertMentions(reply.Message, "gzip");
    }

    [Fact]
    public async Task ModelInfer_DeflateCompressed_Routed()
    {
        // The gateway inflates the message only to read the model; the replica gets the compressed bytes.
        using var packed = new MemoryStream();
        using (var zlib = new ZLibStream(packed, CompressionLevel.Fastest, leaveOpen: true))
        {
            zlib.Write(DigitsMessage);
        }

        var reply = await RawGrpc.PostAsync(Gateway, ModelInferPath, RawGrpc.Frame(packed.ToArray(), flag: 1), new Dictionary<string, string> { ["grpc-encoding"] = "deflate" });

        Assert.True(reply.Status == StatusCode.OK, $"{reply.Status}: {reply.Message}");
        Assert.Equal(0, reply.Body[0]); // the answer comes back uncompressed
        var response = ModelInferResponse.Parser.ParseFrom(reply.Body.AsSpan(5));
        Assert.Equal(Digits.Model, response.ModelName);
        Assert.Equal(Digits.Classes, Digits.LogitCount(response));
    }

    [Fact]
    public async Task ModelInfer_UnknownEncodingCompressed_UnimplementedNamingEncodings()
    {
        var headers = new Dictionary<string, string> { ["grpc-encoding"] = "snappy" };

        var reply = await RawGrpc.PostAsync(Gateway, ModelInferPath, RawGrpc.Frame(DigitsMessage, flag: 1), headers);

        Assert.Equal(StatusCode.Unimplemented, reply.Status);
        Rpc.AssertMentions(reply.Message, "snappy", "gzip", "deflate");
    }

    [Fact]
    public async Task ModelInfer_EmptyModelName_InvalidArgumentNamingModels()
    {
        await Rpc.FailsAsync(StatusCode.InvalidArgument, () => _client.ModelInferAsync(Digits.Request(0, model: ""), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct).ResponseAsync, "names no model", Digits.Model);
    }

    [Fact]
    public async Task ModelMetadata_EmptyMessage_InvalidArgument()
    {
        await Rpc.FailsAsync(StatusCode.InvalidArgument, () => _client.ModelMetadataAsync(new ModelMetadataRequest(), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct).ResponseAsync, "names no model");
    }

    [Fact]
    public async Task ModelInfer_UnknownModel_NotFoundNamingModelsServed()
    {
        await Rpc.FailsAsync(StatusCode.NotFound, () => _client.ModelInferAsync(Digits.Request(0, model: "nope"), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct).ResponseAsync, "'nope'", Digits.Model);
    }

    [Fact]
    public async Task ModelInfer_HeaderNamesOtherModelThanMessage_InvalidArgument()
    {
        var headers = new Metadata { { "effserve-model", "nope" } };

        await Rpc.FailsAsync(StatusCode.InvalidArgument, () => _client.ModelInferAsync(Digits.Request(0), headers, deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct).ResponseAsync, "'nope'", Digits.Model, "effserve-model");
    }

    [Fact]
    public async Task ModelInfer_MessageOverLimit_ResourceExhausted()
    {
        var request = Digits.Request(0, batch: 20); // 20 × 64 × 4 = 5120 bytes of pixels
        Assert.True(request.CalculateSize() > SharedReplicas.MaxRequestBytes);

        await Rpc.FailsAsync(StatusCode.ResourceExhausted, () => _client.ModelInferAsync(request, deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct).ResponseAsync, "4096");
    }

    [Fact]
    public async Task ModelInfer_FrameClaimsHugeLength_ResourceExhaustedWithoutWaiting()
    {
        var reply = await RawGrpc.PostAsync(Gateway, ModelInferPath, RawGrpc.Frame(DigitsMessage, declaredLength: 1u << 30));

        Assert.Equal(StatusCode.ResourceExhausted, reply.Status);
    }

    [Fact]
    public async Task ModelInfer_AfterMalformedRequests_GatewayStillServes()
    {
        await RawGrpc.PostAsync(Gateway, ModelInferPath, [0, 0]);
        await RawGrpc.PostAsync(Gateway, ModelInferPath, RawGrpc.Frame(DigitsMessage, flag: 9));
        await Assert.ThrowsAsync<RpcException>(() => ModelInferBytesAsync([0xFF]));

        var reply = await _client.ModelInferAsync(Digits.Request(1), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);

        Assert.Equal(Digits.Classes, Digits.LogitCount(reply));
    }
}
