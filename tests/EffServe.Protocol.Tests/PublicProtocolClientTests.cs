using System.Runtime.InteropServices;
using EffServe.Core.Tensors;
using EffServe.Testing;
using Grpc.Core;

namespace EffServe.Protocol.Tests;

/// <summary>
/// Calls EffServe the way any OIP v2 client does: method paths and field numbers from the public
/// protocol, messages encoded and decoded by hand. Nothing here uses EffServe's generated code.
/// </summary>
public sealed class PublicProtocolClientTests : IAsyncLifetime
{
    private const string Service = "inference.GRPCInferenceService";
    private static readonly Marshaller<byte[]> s_bytes = Marshallers.Create(b => b, b => b);

    private InferenceServer _server = null!;

    public async ValueTask InitializeAsync() => _server = await InferenceServer.StartAsync(RepoPaths.Zoo);

    public async ValueTask DisposeAsync() => await _server.DisposeAsync();

    [Fact]
    public async Task ServerLive_EmptyRequest_ReportsLive()
    {
        var response = await CallAsync("ServerLive", []);
        Assert.True(response.Bool(1));
    }

    [Fact]
    public async Task ServerMetadata_EmptyRequest_ReportsNameVersionAndExtensions()
    {
        var response = await CallAsync("ServerMetadata", []);
        Assert.Equal("effserve", response.String(1));
        Assert.NotEmpty(response.String(2));
        Assert.Contains("statistics", response.Strings(3));
    }

    [Fact]
    public async Task ModelMetadata_Digits_DescribesTensorsWithVariableBatch()
    {
        var response = await CallAsync("ModelMetadata", new WireWriter().String(1, "digits").ToArray());

        Assert.Equal("digits", response.String(1));
        Assert.Equal(["1"], response.Strings(2));
        Assert.Equal("onnx_onnxv1", response.String(3));
        var input = Assert.Single(response.Messages(4));
        Assert.Equal("image", input.String(1));
        Assert.Equal("FP32", input.String(2));
        Assert.Equal([-1L, 1, 8, 8], input.PackedInt64(3));
        var output = Assert.Single(response.Messages(5));
        Assert.Equal(("logits", "FP32"), (output.String(1), output.String(2)));
        Assert.Equal([-1L, 10], output.PackedInt64(3));
    }

    [Fact]
    public async Task ModelInfer_RawDigitsBatch_ReturnsLogitsThatClassifyTheSamples()
    {
        var images = NpyArray.Read(Path.Combine(RepoPaths.Zoo, "digits", "eval", "images.npy"));
        var labels = MemoryMarshal.Cast<byte, long>(NpyArray.Read(Path.Combine(RepoPaths.Zoo, "digits", "eval", "labels.npy")).Data).ToArray();
        const int Count = 32;
        var request = new WireWriter()
            .String(1, "digits")
            .String(3, "request-7")
            .Message(5, new WireWriter().String(1, "image").String(2, "FP32").PackedInt64(3, [Count, 1, 8, 8]))
            .Message(6, new WireWriter().String(1, "logits"))
            .Bytes(7, images.Data.AsSpan(0, Count * images.RowBytes).ToArray())
            .ToArray();

        var response = await CallAsync("ModelInfer", request);

        Assert.Equal("digits", response.String(1));
        Assert.Equal("request-7", response.String(3));
        var output = Assert.Single(response.Messages(5));
        Assert.Equal(("logits", "FP32"), (output.String(1), output.String(2)));
        Assert.Equal([(long)Count, 10], output.PackedInt64(3));
        var logits = MemoryMarshal.Cast<byte, float>(Assert.Single(response.Bytes(6))).ToArray();
        var correct = Enumerable.Range(0, Count).Count(i => ArgMax(logits.AsSpan(i * 10, 10)) == labels[i]);
        Assert.True(correct >= Count * 0.9, $"{correct} of {Count} classified correctly");

        var parameters = response.Messages(4).ToDictionary(e => e.String(1), e => e.Messages(2).Single());
        Assert.Equal("fp32", parameters["effserve.variant"].String(3));
        Assert.Equal(Count, parameters["effserve.batch_size"].Int64(2));
        Assert.True(parameters.ContainsKey("effserve.queue_us"));
        Assert.True(parameters.ContainsKey("effserve.compute_us"));
    }

    [Fact]
    public async Task ModelInfer_EarlyExitParameterByFieldNumber_ReportsExitStage()
    {
        var images = NpyArray.Read(Path.Combine(RepoPaths.Zoo, "digits", "eval", "images.npy"));
        var request = new WireWriter()
            .String(1, "digits")
            .Message(4, new WireWriter().String(1, "effserve.exit_threshold").Message(2, new WireWriter().Double(4, 1.0)))
            .Message(5, new WireWriter().String(1, "image").String(2, "FP32").PackedInt64(3, [1, 1, 8, 8]))
            .Bytes(7, images.Data.AsSpan(0, images.RowBytes).ToArray())
            .ToArray();

        var response = await CallAsync("ModelInfer", request);

        var parameters = response.Messages(4).ToDictionary(e => e.String(1), e => e.Messages(2).Single());
        Assert.Equal("early-exit", parameters["effserve.variant"].String(3));
        Assert.Equal(3, parameters["effserve.exit_stage"].Int64(2));
    }

    [Fact]
    public async Task ModelInfer_UnknownModel_FailsWithNotFound()
    {
        var request = new WireWriter().String(1, "no-such-model").ToArray();
        var e = await Assert.ThrowsAsync<RpcException>(() => CallAsync("ModelInfer", request));
        Assert.Equal(StatusCode.NotFound, e.StatusCode);
        Assert.Contains("digits", e.Status.Detail, StringComparison.Ordinal);
    }

    private async Task<WireMessage> CallAsync(string rpc, byte[] request)
    {
        var method = new Method<byte[], byte[]>(MethodType.Unary, Service, rpc, s_bytes, s_bytes);
        var response = await _server.Channel.CreateCallInvoker().AsyncUnaryCall(method, null, new CallOptions(), request);
        return WireMessage.Parse(response);
    }

    private static int ArgMax(ReadOnlySpan<float> values)
    {
        var best = 0;
        for (var i = 1; i < values.Length; i++)
        {
            if (values[i] > values[best])
            {
                best = i;
            }
        }

        return best;
    }
}
