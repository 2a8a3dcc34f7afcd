using EffServe.Contracts.Inference;
using EffServe.Inference.Tests.Support;
using Google.Protobuf;
using Grpc.Core;
using InputTensor = EffServe.Contracts.Inference.ModelInferRequest.Types.InferInputTensor;

namespace EffServe.Inference.Tests;

/// <summary>Every protocol datatype through the wire, on the fixture zoo's identity models, and compute on <c>add</c>.</summary>
public sealed class DatatypeTests : IClassFixture<FixtureZooServerFixture>
{
    private readonly GRPCInferenceService.GRPCInferenceServiceClient _client;

    public DatatypeTests(FixtureZooServerFixture server)
    {
        _client = server.Inference;
    }

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task ModelInfer_EveryDatatypeRaw_RoundTripsByteForByte()
    {
        var request = InvalidRequestTests.TypedModelRaw(DatatypeSamples.All);

        var response = await _client.ModelInferAsync(request, cancellationToken: Ct);

        Assert.Equal(DatatypeSamples.All.Count, response.Outputs.Count);
        Assert.Equal(response.Outputs.Count, response.RawOutputContents.Count);
        foreach (var c in DatatypeSamples.All)
        {
            var index = response.Outputs.ToList().FindIndex(o => o.Name == c.Output);
            Assert.True(index >= 0, $"No output {c.Output}.");
            var output = response.Outputs[index];
            Assert.Equal(c.Datatype, output.Datatype);
            Assert.Equal(DatatypeCase.Shape, output.Shape);
            Assert.True(c.Raw.Equals(response.RawOutputContents[index]), $"{c.Datatype} came back as {Convert.ToHexString(response.RawOutputContents[index].Span)}, sent {Convert.ToHexString(c.Raw.Span)}.");
        }
    }

    [Fact]
    public async Task ModelInfer_RequestedOutputsOfTyped_ReturnsOnlyThoseInRequestedOrder()
    {
        var request = InvalidRequestTests.TypedModelRaw(DatatypeSamples.All);
        request.Outputs.Add(new ModelInferRequest.Types.InferRequestedOutputTensor { Name = "out_string" });
        request.Outputs.Add(new ModelInferRequest.Types.InferRequestedOutputTensor { Name = "out_int8" });

        var response = await _client.ModelInferAsync(request, cancellationToken: Ct);

        Assert.Equal(["out_string", "out_int8"], response.Outputs.Select(o => o.Name));
        Assert.Equal(DatatypeSamples.Named("BYTES").Raw, response.RawOutputContents[0]);
        Assert.Equal(DatatypeSamples.Named("INT8").Raw, response.RawOutputContents[1]);
    }

    [Fact]
    public async Task ModelInfer_Fp16Typed_InvalidArgumentSayingItTravelsRaw()
    {
        var request = TypedModelTyped();

        var error = await RpcAssert.FailsAsync(
            StatusCode.InvalidArgument,
            () => _client.ModelInferAsync(request, cancellationToken: Ct).ResponseAsync,
            "Invalid request for model 'typed':", "input 'in_float16' is FP16, which travels only as raw bytes (raw_input_contents)");

        // Every other input decoded cleanly from its typed field: FP16 is the only complaint.
        foreach (var c in DatatypeSamples.WithTypedField)
        {
            Assert.DoesNotContain($"'{c.Input}'", error.Status.Detail, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task ModelInfer_Int8OutOfRange_InvalidArgumentNamingRange()
    {
        var request = TypedModelTyped();
        request.Inputs.Single(i => i.Name == "in_int8").Contents.IntContents[0] = 200;

        await RpcAssert.FailsAsync(
            StatusCode.InvalidArgument,
            () => _client.ModelInferAsync(request, cancellationToken: Ct).ResponseAsync,
            "input 'in_int8' holds 200 in int_contents, outside the range of INT8 (-128 to 127)");
    }

    [Fact]
    public async Task ModelInfer_Int16OutOfRange_InvalidArgumentNamingRange()
    {
        var request = TypedModelTyped();
        request.Inputs.Single(i => i.Name == "in_int16").Contents.IntContents[2] = -40000;

        await RpcAssert.FailsAsync(
            StatusCode.InvalidArgument,
            () => _client.ModelInferAsync(request, cancellationToken: Ct).ResponseAsync,
            "input 'in_int16' holds -40000 in int_contents, outside the range of INT16 (-32768 to 32767)");
    }

    [Fact]
    public async Task ModelInfer_Uint8OutOfRange_InvalidArgumentNamingLargest()
    {
        var request = TypedModelTyped();
        request.Inputs.Single(i => i.Name == "in_uint8").Contents.UintContents[1] = 256;

        await RpcAssert.FailsAsync(
            StatusCode.InvalidArgument,
            () => _client.ModelInferAsync(request, cancellationToken: Ct).ResponseAsync,
            "input 'in_uint8' holds 256 in uint_contents, above the largest UINT8 (255)");
    }

    [Fact]
    public async Task ModelInfer_RawBytesLengthPrefixPastEnd_InvalidArgumentMalformed()
    {
        var request = InvalidRequestTests.TypedModelRaw(DatatypeSamples.All);
        var index = request.Inputs.ToList().FindIndex(i => i.Name == "in_string");
        request.RawInputContents[index] = ByteString.CopyFrom([100, 0, 0, 0, (byte)'a', (byte)'b', (byte)'c']);

        await RpcAssert.FailsAsync(
            StatusCode.InvalidArgument,
            () => _client.ModelInferAsync(request, cancellationToken: Ct).ResponseAsync,
            "input 'in_string' raw BYTES contents are malformed: element 0 claims 100 bytes at offset 0 but only 3 remain");
    }

    [Fact]
    public async Task ModelInfer_RawBytesStrayTail_InvalidArgumentMalformed()
    {
        var request = InvalidRequestTests.TypedModelRaw(DatatypeSamples.All);
        var index = request.Inputs.ToList().FindIndex(i => i.Name == "in_string");
        request.RawInputContents[index] = ByteString.CopyFrom([.. DatatypeSamples.Named("BYTES").Raw.Span, 1, 0]);

        await RpcAssert.FailsAsync(
            StatusCode.InvalidArgument,
            () => _client.ModelInferAsync(request, cancellationToken: Ct).ResponseAsync,
            "input 'in_string' raw BYTES contents are malformed", "too few for a 4-byte length");
    }

    [Fact]
    public async Task ModelInfer_RawBytesWrongElementCount_InvalidArgument()
    {
        var request = InvalidRequestTests.TypedModelRaw(DatatypeSamples.All);
        var index = request.Inputs.ToList().FindIndex(i => i.Name == "in_string");
        request.RawInputContents[index] = DatatypeSamples.RawStrings([[1], [2]]);

        await RpcAssert.FailsAsync(
            StatusCode.InvalidArgument,
            () => _client.ModelInferAsync(request, cancellationToken: Ct).ResponseAsync,
            "input 'in_string' raw contents hold 2 BYTES elements; shape [2, 3] needs 6");
    }

    [Fact]
    public async Task ModelInfer_Bf16Raw_RoundTripsOnTypedBf16()
    {
        // 1.0, -2.0, +inf, the smallest normal, 0.5, -0.0 as bfloat16 bit patterns.
        ushort[] bits = [0x3F80, 0xC000, 0x7F80, 0x0080, 0x3F00, 0x8000];
        var request = new ModelInferRequest
        {
            ModelName = "typed-bf16",
            Inputs = { new InputTensor { Name = "in_bfloat16", Datatype = "BF16", Shape = { 2, 3 } } },
            RawInputContents = { Wire.Raw<ushort>(bits) },
        };

        var response = await _client.ModelInferAsync(request, cancellationToken: Ct);

        var output = Assert.Single(response.Outputs);
        Assert.Equal(("out_bfloat16", "BF16"), (output.Name, output.Datatype));
        Assert.Equal([2L, 3], output.Shape);
        Assert.Equal(bits, Wire.Read<ushort>(Assert.Single(response.RawOutputContents)));
    }

    [Fact]
    public async Task ModelInfer_Bf16Typed_InvalidArgumentSayingItTravelsRaw()
    {
        var request = new ModelInferRequest
        {
            ModelName = "typed-bf16",
            Inputs = { new InputTensor { Name = "in_bfloat16", Datatype = "BF16", Shape = { 1, 3 }, Contents = new InferTensorContents { Fp32Contents = { 1, 2, 3 } } } },
        };

        await RpcAssert.FailsAsync(
            StatusCode.InvalidArgument,
            () => _client.ModelInferAsync(request, cancellationToken: Ct).ResponseAsync,
            "Invalid request for model 'typed-bf16':", "input 'in_bfloat16' is BF16, which travels only as raw bytes");
    }

    [Fact]
    public async Task ModelInfer_AddRaw_ComputesXPlusOneOnCpuFallback()
    {
        float[] x = [0f, 1f, -1f, 2.5f, 100f, -100.25f, 1e6f, float.MinValue];

        var response = await _client.ModelInferAsync(InvalidRequestTests.AddRequest(x), cancellationToken: Ct);

        Assert.Equal("cpu", Wire.StringParameter(response, "effserve.variant"));
        var output = Assert.Single(response.Outputs);
        Assert.Equal(("y", "FP32"), (output.Name, output.Datatype));
        Assert.Equal([2L, 4], output.Shape);
        Assert.Equal(x.Select(v => v + 1f), Wire.Read<float>(Assert.Single(response.RawOutputContents)));
    }

    [Fact]
    public async Task ModelInfer_AddTyped_ComputesXPlusOne()
    {
        float[] x = [3f, -4f, 0.5f, 7f];
        var request = new ModelInferRequest
        {
            ModelName = "add",
            Inputs = { new InputTensor { Name = "x", Datatype = "FP32", Shape = { 1, 4 }, Contents = new InferTensorContents { Fp32Contents = { x } } } },
        };

        var response = await _client.ModelInferAsync(request, cancellationToken: Ct);

        Assert.Equal([4f, -3f, 1.5f, 8f], Assert.Single(response.Outputs).Contents.Fp32Contents);
    }

    [Fact]
    public async Task ModelInfer_AddPinnedCpu_RunsCpu()
    {
        var request = InvalidRequestTests.AddRequest([1, 2, 3, 4]);
        request.Parameters.Add("effserve.variant", Wire.Text("cpu"));

        var response = await _client.ModelInferAsync(request, cancellationToken: Ct);

        Assert.Equal("cpu", Wire.StringParameter(response, "effserve.variant"));
        Assert.Equal([2f, 3f, 4f, 5f], Wire.Read<float>(response.RawOutputContents[0]));
    }

    [Fact]
    public async Task ModelReady_AddWithGpuSkipped_IsReadyThroughCpu()
    {
        var ready = await _client.ModelReadyAsync(new ModelReadyRequest { Name = "add" }, cancellationToken: Ct);
        var server = await _client.ServerReadyAsync(new ServerReadyRequest(), cancellationToken: Ct);

        Assert.True(ready.Ready);
        Assert.True(server.Ready);
    }

    /// <summary>A typed request to <c>typed</c>: every input in its typed field; FP16 has none, so it carries no contents.</summary>
    private static ModelInferRequest TypedModelTyped()
    {
        var request = new ModelInferRequest { ModelName = "typed" };
        foreach (var c in DatatypeSamples.All)
        {
            request.Inputs.Add(new InputTensor { Name = c.Input, Datatype = c.Datatype, Shape = { DatatypeCase.Shape }, Contents = c.Typed?.Clone() });
        }

        return request;
    }
}
