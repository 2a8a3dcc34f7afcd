using EffServe.Contracts.Inference;
using EffServe.Inference.Tests.Support;

namespace EffServe.Inference.Tests;

/// <summary>ModelInfer on digits, raw and typed, one sample and many.</summary>
public sealed class ModelInferTests : IClassFixture<DigitsServerFixture>
{
    private readonly GRPCInferenceService.GRPCInferenceServiceClient _client;

    public ModelInferTests(DigitsServerFixture server)
    {
        _client = server.Inference;
    }

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(64)]
    public async Task ModelInfer_Raw_ReturnsRawLogitsOfShapeBatchBy10(int batch)
    {
        var response = await _client.ModelInferAsync(Wire.DigitsEvalRaw(0, batch), cancellationToken: Ct);

        Assert.Equal((Wire.Digits, "1"), (response.ModelName, response.ModelVersion));
        var output = Assert.Single(response.Outputs);
        Assert.Equal((Wire.Logits, "FP32"), (output.Name, output.Datatype));
        Assert.Equal([batch, 10L], output.Shape);
        var raw = Assert.Single(response.RawOutputContents);
        Assert.Equal(batch * 10 * sizeof(float), raw.Length);
        Assert.True(output.Contents is null || output.Contents.Fp32Contents.Count == 0, "A raw request gets raw outputs only.");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    public async Task ModelInfer_Typed_ReturnsTypedLogitsOfShapeBatchBy10(int batch)
    {
        var response = await _client.ModelInferAsync(Wire.DigitsTyped(DigitsEval.Images(0, batch)), cancellationToken: Ct);

        var output = Assert.Single(response.Outputs);
        Assert.Equal([batch, 10L], output.Shape);
        Assert.Equal(batch * 10, output.Contents.Fp32Contents.Count);
        Assert.Empty(response.RawOutputContents);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(5)]
    public async Task ModelInfer_Always_SetsResponseParametersWithTheirTypes(int batch)
    {
        var response = await _client.ModelInferAsync(Wire.DigitsEvalRaw(3, batch), cancellationToken: Ct);

        Assert.Equal("fp32", Wire.StringParameter(response, "effserve.variant"));
        Assert.Equal(batch, Wire.Int64Parameter(response, "effserve.batch_size"));
        Assert.True(Wire.Int64Parameter(response, "effserve.queue_us") >= 0);
        Assert.True(Wire.Int64Parameter(response, "effserve.compute_us") >= 0);
        Assert.False(response.Parameters.ContainsKey("effserve.exit_stage"), "fp32 is not an early-exit variant.");
        Assert.False(response.Parameters.ContainsKey("effserve.exit_stages"));
        Assert.False(response.Parameters.ContainsKey("effserve.exit_threshold"));
    }

    [Fact]
    public async Task ModelInfer_RawAndTyped_GiveIdenticalLogits()
    {
        const int Batch = 12;

        var raw = await _client.ModelInferAsync(Wire.DigitsEvalRaw(100, Batch), cancellationToken: Ct);
        var typed = await _client.ModelInferAsync(Wire.DigitsTyped(DigitsEval.Images(100, Batch)), cancellationToken: Ct);

        Assert.Equal(Wire.LogitsOf(raw), Wire.LogitsOf(typed));
    }

    [Fact]
    public async Task ModelInfer_BatchOfN_EqualsNRequestsOfOne()
    {
        const int Batch = 6;
        var batched = Wire.LogitsOf(await _client.ModelInferAsync(Wire.DigitsEvalRaw(200, Batch), cancellationToken: Ct));

        for (var i = 0; i < Batch; i++)
        {
            var single = Wire.LogitsOf(await _client.ModelInferAsync(Wire.DigitsEvalRaw(200 + i, 1), cancellationToken: Ct));
            for (var c = 0; c < DigitsEval.Classes; c++)
            {
                Assert.Equal(batched[(i * DigitsEval.Classes) + c], single[c], 1e-5f);
            }
        }
    }

    [Fact]
    public async Task ModelInfer_RequestedOutput_ReturnsOnlyThatOutput()
    {
        var request = Wire.DigitsEvalRaw(0, 2);
        request.Outputs.Add(new ModelInferRequest.Types.InferRequestedOutputTensor { Name = Wire.Logits });

        var response = await _client.ModelInferAsync(request, cancellationToken: Ct);

        Assert.Equal(Wire.Logits, Assert.Single(response.Outputs).Name);
        Assert.Single(response.RawOutputContents);
        Assert.Equal(20, Wire.LogitsOf(response).Length);
    }

    [Fact]
    public async Task ModelInfer_RequestedOutputWithBinaryDataParameter_IsAccepted()
    {
        var request = Wire.DigitsEvalRaw(0, 1);
        request.Outputs.Add(new ModelInferRequest.Types.InferRequestedOutputTensor { Name = Wire.Logits, Parameters = { ["binary_data"] = new InferParameter { BoolParam = true } } });

        var response = await _client.ModelInferAsync(request, cancellationToken: Ct);

        Assert.Single(response.Outputs);
    }

    [Fact]
    public async Task ModelInfer_WithId_EchoesId()
    {
        var response = await _client.ModelInferAsync(Wire.DigitsEvalRaw(0, 1, id: "req-42/ü"), cancellationToken: Ct);

        Assert.Equal("req-42/ü", response.Id);
    }

    [Fact]
    public async Task ModelInfer_WithoutId_ReturnsEmptyId()
    {
        var response = await _client.ModelInferAsync(Wire.DigitsEvalRaw(0, 1), cancellationToken: Ct);

        Assert.Equal("", response.Id);
    }

    [Fact]
    public async Task ModelInfer_EveryKnownParameterValid_Succeeds()
    {
        var request = Wire.DigitsEvalRaw(0, 1);
        request.Parameters.Add("effserve.slo_ms", Wire.Real(5000));
        request.Parameters.Add("effserve.min_accuracy", Wire.Real(0.5));
        request.Parameters.Add("effserve.max_cost_usd", Wire.Real(1));
        request.Parameters.Add("effserve.cache", Wire.Text("bypass"));
        request.Parameters.Add("priority", Wire.Integer(1));
        request.Parameters.Add("timeout", Wire.Integer(30_000_000));
        request.Parameters.Add("triton_something", Wire.Text("ignored"));

        var response = await _client.ModelInferAsync(request, cancellationToken: Ct);

        Assert.Equal("fp32", Wire.StringParameter(response, "effserve.variant"));
    }

    [Fact]
    public async Task ModelInfer_PinnedFp32_RunsFp32()
    {
        var request = Wire.DigitsEvalRaw(0, 1);
        request.Parameters.Add("effserve.variant", Wire.Text("fp32"));

        var response = await _client.ModelInferAsync(request, cancellationToken: Ct);

        Assert.Equal("fp32", Wire.StringParameter(response, "effserve.variant"));
    }
}
