using EffServe.Contracts.Inference;
using EffServe.Inference.Tests.Support;

namespace EffServe.Inference.Tests;

/// <summary>The early-exit variant of digits, steered by effserve.exit_threshold through the wire.</summary>
public sealed class EarlyExitTests : IClassFixture<DigitsServerFixture>
{
    private const int Batch = 60;

    private readonly GRPCInferenceService.GRPCInferenceServiceClient _client;

    public EarlyExitTests(DigitsServerFixture server)
    {
        _client = server.Inference;
    }

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task ModelInfer_Threshold1_EveryStageRunsAndLogitsEqualFp32()
    {
        var request = Wire.DigitsEvalRaw(120, Batch);
        request.Parameters.Add("effserve.exit_threshold", Wire.Real(1.0));

        var earlyExit = await _client.ModelInferAsync(request, cancellationToken: Ct);
        var fp32 = await _client.ModelInferAsync(Wire.DigitsEvalRaw(120, Batch), cancellationToken: Ct);

        Assert.Equal("early-exit", Wire.StringParameter(earlyExit, "effserve.variant"));
        Assert.Equal(1.0, Wire.DoubleParameter(earlyExit, "effserve.exit_threshold"));
        Assert.Equal(3, Wire.Int64Parameter(earlyExit, "effserve.exit_stage"));
        Assert.All(Wire.ExitStagesOf(earlyExit), s => Assert.Equal(3, s));
        var expected = Wire.LogitsOf(fp32);
        var actual = Wire.LogitsOf(earlyExit);
        Assert.Equal(expected.Length, actual.Length);
        for (var i = 0; i < expected.Length; i++)
        {
            Assert.Equal(expected[i], actual[i], 1e-5f);
        }
    }

    [Fact]
    public async Task ModelInfer_Threshold0_EverySampleExitsAtStage1()
    {
        var request = Wire.DigitsEvalRaw(0, Batch);
        request.Parameters.Add("effserve.exit_threshold", Wire.Real(0.0));

        var response = await _client.ModelInferAsync(request, cancellationToken: Ct);

        Assert.Equal("early-exit", Wire.StringParameter(response, "effserve.variant"));
        Assert.Equal(0.0, Wire.DoubleParameter(response, "effserve.exit_threshold"));
        Assert.Equal(1, Wire.Int64Parameter(response, "effserve.exit_stage"));
        var stages = Wire.ExitStagesOf(response);
        Assert.Equal(Batch, stages.Length);
        Assert.All(stages, s => Assert.Equal(1, s));
        Assert.Equal([Batch, 10L], Assert.Single(response.Outputs).Shape);
    }

    [Fact]
    public async Task ModelInfer_Threshold0AsInt64_IsAccepted()
    {
        var request = Wire.DigitsEvalRaw(0, 2);
        request.Parameters.Add("effserve.exit_threshold", Wire.Integer(0));

        var response = await _client.ModelInferAsync(request, cancellationToken: Ct);

        Assert.All(Wire.ExitStagesOf(response), s => Assert.Equal(1, s));
    }

    [Fact]
    public async Task ModelInfer_PinnedEarlyExitDefaultThreshold_StagesWithin1To3()
    {
        var request = Wire.DigitsEvalRaw(240, Batch);
        request.Parameters.Add("effserve.variant", Wire.Text("early-exit"));

        var response = await _client.ModelInferAsync(request, cancellationToken: Ct);

        Assert.Equal("early-exit", Wire.StringParameter(response, "effserve.variant"));
        Assert.Equal(0.9, Wire.DoubleParameter(response, "effserve.exit_threshold"));
        var stages = Wire.ExitStagesOf(response);
        Assert.Equal(Batch, stages.Length);
        Assert.All(stages, s => Assert.InRange(s, 1, 3));
        Assert.Equal(stages.Max(), Wire.Int64Parameter(response, "effserve.exit_stage"));
        Assert.Equal(Batch * 10, Wire.LogitsOf(response).Length);
    }

    [Fact]
    public async Task ModelInfer_EarlyExitBatchOfOne_SetsExitStageButNotExitStages()
    {
        var request = Wire.DigitsEvalRaw(5, 1);
        request.Parameters.Add("effserve.exit_threshold", Wire.Real(1.0));

        var response = await _client.ModelInferAsync(request, cancellationToken: Ct);

        Assert.Equal(3, Wire.Int64Parameter(response, "effserve.exit_stage"));
        Assert.False(response.Parameters.ContainsKey("effserve.exit_stages"));
    }

    [Fact]
    public async Task ModelInfer_EarlyExitTyped_ReturnsTypedLogits()
    {
        var request = Wire.DigitsTyped(DigitsEval.Images(10, 4));
        request.Parameters.Add("effserve.variant", Wire.Text("early-exit"));

        var response = await _client.ModelInferAsync(request, cancellationToken: Ct);

        Assert.Empty(response.RawOutputContents);
        Assert.Equal(40, Assert.Single(response.Outputs).Contents.Fp32Contents.Count);
    }

    [Fact]
    public async Task ModelInfer_MixedStages_EachSampleGetsItsOwnLogits()
    {
        // At a threshold between 0 and 1 samples leave at different stages; each one's logits must
        // still be its own: the same as when it is sent alone.
        var request = Wire.DigitsEvalRaw(300, 20);
        request.Parameters.Add("effserve.exit_threshold", Wire.Real(0.9));
        var batched = await _client.ModelInferAsync(request, cancellationToken: Ct);
        var batchedLogits = Wire.LogitsOf(batched);
        var batchedStages = Wire.ExitStagesOf(batched);

        for (var i = 0; i < 20; i++)
        {
            var single = Wire.DigitsEvalRaw(300 + i, 1);
            single.Parameters.Add("effserve.exit_threshold", Wire.Real(0.9));
            var alone = await _client.ModelInferAsync(single, cancellationToken: Ct);

            Assert.Equal(batchedStages[i], Wire.ExitStagesOf(alone)[0]);
            var logits = Wire.LogitsOf(alone);
            for (var c = 0; c < DigitsEval.Classes; c++)
            {
                Assert.Equal(batchedLogits[(i * DigitsEval.Classes) + c], logits[c], 1e-4f);
            }
        }
    }
}
