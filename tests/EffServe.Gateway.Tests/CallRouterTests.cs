using System.Buffers;
using System.IO.Compression;
using EffServe.Contracts.Inference;
using EffServe.Contracts.Jobs;
using EffServe.Gateway.Routing;
using EffServe.Gateway.Tests.Support;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.Options;

namespace EffServe.Gateway.Tests;

/// <summary>
/// The gateway's one routing decision and the field-1 scanner under it, without sockets: the model
/// is always the message's, a disagreeing header is refused, compressed messages are inflated only
/// within the limit, and the scanner reads the same name however the bytes are split.
/// </summary>
public sealed class CallRouterTests
{
    private const int Limit = 64 * 1024;

    private static readonly GatewayMethod s_infer = Method("/inference.GRPCInferenceService/ModelInfer");
    private static readonly GatewayMethod s_getJob = Method("/effserve.v1.JobService/GetJob");

    private static GatewayMethod Method(string path) => GrpcMethods.TryGet(path, out var m) ? m : throw new InvalidOperationException(path);

    private static CallRouter Router(Action<GatewayOptions>? configure = null)
    {
        var options = new GatewayOptions { MaxRequestBytes = Limit };
        options.Models["digits"] = new ModelRouteOptions { Destinations = ["http://127.0.0.1:1"] };
        options.Models["shapes"] = new ModelRouteOptions { Destinations = ["http://127.0.0.1:2"], AllowedTenants = ["team-a"] };
        configure?.Invoke(options);
        var wrapped = Options.Create(options);
        return new CallRouter(new ModelRouter(wrapped, TimeProvider.System), wrapped);
    }

    private static ReadOnlySequence<byte> Frame(IMessage message) => new(RawGrpc.Frame(message));

    private static ModelInferRequest Infer(string model, int tensorBytes = 4096)
    {
        var request = new ModelInferRequest { ModelName = model, Id = "x" };
        request.Inputs.Add(new ModelInferRequest.Types.InferInputTensor { Name = "image", Datatype = "FP32", Shape = { 1, tensorBytes / 4 } });
        request.RawInputContents.Add(ByteString.CopyFrom(new byte[tensorBytes]));
        return request;
    }

    [Fact]
    public void Decide_MessageNamesServedModel_RoutedToIt()
    {
        var decision = Router().Decide(s_infer, null, Frame(Infer("digits")), null, "anonymous");

        Assert.True(decision.Routed, decision.Message);
        Assert.Equal("digits", decision.Model);
        Assert.Equal("digits", decision.Replicas!.Model);
    }

    [Theory]
    [InlineData("shapes")]
    [InlineData("nope")]
    public void Decide_HeaderNamesOtherModelThanMessage_InvalidArgument(string header)
    {
        var decision = Router().Decide(s_infer, header, Frame(Infer("digits")), null, "anonymous");

        Assert.Equal(StatusCode.InvalidArgument, decision.Status);
        Assert.Contains("effserve-model", decision.Message, StringComparison.Ordinal);
        Assert.Null(decision.Replicas);
    }

    [Fact]
    public void Decide_HeaderAgreesWithMessage_Routed()
    {
        Assert.True(Router().Decide(s_infer, "digits", Frame(Infer("digits")), null, "anonymous").Routed);
    }

    [Fact]
    public void Decide_TenantOutsideAllowList_PermissionDenied_InsideRouted()
    {
        var router = Router();

        var refused = router.Decide(s_infer, null, Frame(Infer("shapes")), null, "team-b");
        var admitted = router.Decide(s_infer, null, Frame(Infer("shapes")), null, "team-a");

        Assert.Equal(StatusCode.PermissionDenied, refused.Status);
        Assert.Contains("team-b", refused.Message, StringComparison.Ordinal);
        Assert.True(admitted.Routed);
    }

    [Fact]
    public void Decide_UnknownOrNoModel_NotFoundOrInvalidArgument_NamingModelsServed()
    {
        var unknown = Router().Decide(s_infer, null, Frame(Infer("nope")), null, "anonymous");
        var none = Router().Decide(s_infer, null, Frame(Infer("")), null, "anonymous");

        Assert.Equal(StatusCode.NotFound, unknown.Status);
        Assert.Contains("digits, shapes", unknown.Message, StringComparison.Ordinal);
        Assert.Equal(StatusCode.InvalidArgument, none.Status);
    }

    [Fact]
    public void Decide_JobCall_RoutedByTheJobIdsModel_AndItsAllowList()
    {
        var router = Router();

        var digits = router.Decide(s_getJob, null, Frame(new GetJobRequest { JobId = Core.Jobs.JobIds.New("digits") }), null, "anonymous");
        var shapes = router.Decide(s_getJob, null, Frame(new GetJobRequest { JobId = Core.Jobs.JobIds.New("shapes") }), null, "team-b");
        var malformed = router.Decide(s_getJob, null, Frame(new GetJobRequest { JobId = "no-dot" }), null, "anonymous");

        Assert.Equal("digits", digits.Model);
        Assert.True(digits.Routed);
        Assert.Equal(StatusCode.PermissionDenied, shapes.Status);
        Assert.Equal(StatusCode.InvalidArgument, malformed.Status);
    }

    [Theory]
    [InlineData("gzip")]
    [InlineData("deflate")]
    public void Decide_CompressedMessage_InflatedAndRouted(string encoding)
    {
        var frame = RawGrpc.Frame(Compress(Infer("digits").ToByteArray(), encoding), flag: 1);

        var decision = Router().Decide(s_infer, null, new ReadOnlySequence<byte>(frame), encoding, "anonymous");

        Assert.True(decision.Routed, decision.Message);
        Assert.Equal("digits", decision.Model);
    }

    [Theory]
    [InlineData("gzip")]
    [InlineData("deflate")]
    public void Decide_CompressedBomb_ResourceExhaustedNamingTheLimit(string encoding)
    {
        // 16 MiB of zeros inflate from a few KiB: refused once the inflated bytes pass the limit.
        var bomb = Compress(Infer("digits", tensorBytes: 16 * 1024 * 1024).ToByteArray(), encoding);
        Assert.True(bomb.Length < Limit, $"{bomb.Length} compressed bytes");

        var decision = Router().Decide(s_infer, null, new ReadOnlySequence<byte>(RawGrpc.Frame(bomb, flag: 1)), encoding, "anonymous");

        Assert.Equal(StatusCode.ResourceExhausted, decision.Status);
        Assert.Contains(Limit.ToString(System.Globalization.CultureInfo.InvariantCulture), decision.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Decide_UnknownEncoding_Unimplemented()
    {
        var decision = Router().Decide(s_infer, null, new ReadOnlySequence<byte>(RawGrpc.Frame([1, 2, 3], flag: 1)), "snappy", "anonymous");

        Assert.Equal(StatusCode.Unimplemented, decision.Status);
    }

    [Fact]
    public void Scanner_SameNameHoweverTheBytesAreSplit_LaterField1Wins()
    {
        var message = Infer("first", tensorBytes: 3000).ToByteArray().Concat(new ModelInferRequest { ModelName = "second" }.ToByteArray()).ToArray();

        foreach (var chunk in new[] { 1, 2, 7, 64, 1000, message.Length })
        {
            var scanner = new Field1Scanner();
            foreach (var piece in message.Chunk(chunk))
            {
                Assert.True(scanner.Feed(piece), scanner.Problem);
            }

            Assert.True(scanner.TryComplete(out var name), scanner.Problem);
            Assert.Equal("second", name);
        }
    }

    [Theory]
    [InlineData(new byte[] { 0x0A, 0x05, 0x64 }, "field 1")] // the name claims 5 bytes, 1 follows
    [InlineData(new byte[] { 0x12 }, "field 2")] // a length that never comes
    [InlineData(new byte[] { 0x0B }, "wire type 3")] // groups are not part of these messages
    [InlineData(new byte[] { 0x00 }, "numbered 0")]
    public void Scanner_Malformed_ProblemNamesTheFault(byte[] message, string mentions)
    {
        var scanner = new Field1Scanner();
        var fed = scanner.Feed(message);

        Assert.False(fed && scanner.TryComplete(out _));
        Assert.Contains(mentions, scanner.Problem, StringComparison.Ordinal);
    }

    [Fact]
    public void Scanner_NameLongerThanLimit_RefusedWithoutHoldingIt()
    {
        var scanner = new Field1Scanner();

        Assert.False(scanner.Feed(new ModelInferRequest { ModelName = new string('m', Field1Scanner.MaxNameBytes + 1) }.ToByteArray()));
        Assert.Contains("at most 512", scanner.Problem, StringComparison.Ordinal);
    }

    private static byte[] Compress(byte[] data, string encoding)
    {
        using var output = new MemoryStream();
        using (Stream compressor = encoding == "gzip" ? new GZipStream(output, CompressionLevel.Optimal) : new ZLibStream(output, CompressionLevel.Optimal))
        {
            compressor.Write(data);
        }

        return output.ToArray();
    }
}
