using EffServe.Contracts.Inference;
using EffServe.Inference.Tests.Support;
using Google.Protobuf;
using Grpc.Core;
using InputTensor = EffServe.Contracts.Inference.ModelInferRequest.Types.InferInputTensor;

namespace EffServe.Inference.Tests;

/// <summary>
/// Every way a request can be wrong: each must fail with the right status and a message that
/// names the model or tensor and says what was expected.
/// </summary>
public sealed class InvalidRequestTests : IClassFixture<DigitsServerFixture>, IClassFixture<FixtureZooServerFixture>
{
    private const string DigitsPrefix = "Invalid request for model 'digits':";

    private readonly GRPCInferenceService.GRPCInferenceServiceClient _digits;
    private readonly GRPCInferenceService.GRPCInferenceServiceClient _fixtures;

    public InvalidRequestTests(DigitsServerFixture digits, FixtureZooServerFixture fixtures)
    {
        _digits = digits.Inference;
        _fixtures = fixtures.Inference;
    }

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task ModelInfer_WrongDatatype_InvalidArgumentNamingExpected()
    {
        var request = Wire.DigitsInput(1);
        request.Inputs[0].Datatype = "FP64";
        request.RawInputContents.Add(ByteString.CopyFrom(new byte[64 * 8]));

        await FailsAsync(_digits, request, DigitsPrefix, "input 'image' has datatype FP64 but the model expects FP32");
    }

    [Fact]
    public async Task ModelInfer_UnknownDatatypeString_InvalidArgumentNamingExpected()
    {
        var request = Wire.DigitsEvalRaw(0, 1);
        request.Inputs[0].Datatype = "FLOAT";

        await FailsAsync(_digits, request, DigitsPrefix, "input 'image'", "'FLOAT'", "not a protocol datatype", "expects FP32");
    }

    [Fact]
    public async Task ModelInfer_LowerCaseDatatype_InvalidArgument()
    {
        var request = Wire.DigitsEvalRaw(0, 1);
        request.Inputs[0].Datatype = "fp32";

        await FailsAsync(_digits, request, "input 'image'", "'fp32'", "expects FP32");
    }

    [Fact]
    public async Task ModelInfer_WrongRank_InvalidArgumentNamingExpectedShape()
    {
        var request = Wire.DigitsEvalRaw(0, 1);
        request.Inputs[0].Shape.Clear();
        request.Inputs[0].Shape.Add([1, 64]);

        await FailsAsync(_digits, request, DigitsPrefix, "input 'image' has shape [1, 64] but the model expects [-1, 1, 8, 8]");
    }

    [Fact]
    public async Task ModelInfer_WrongFixedDimension_InvalidArgumentNamingExpectedShape()
    {
        var request = Wire.DigitsInput(1);
        request.Inputs[0].Shape[3] = 7;
        request.RawInputContents.Add(ByteString.CopyFrom(new byte[56 * 4]));

        await FailsAsync(_digits, request, DigitsPrefix, "input 'image' has shape [1, 1, 8, 7] but the model expects [-1, 1, 8, 8]");
    }

    [Fact]
    public async Task ModelInfer_NegativeDimension_InvalidArgument()
    {
        var request = Wire.DigitsEvalRaw(0, 1);
        request.Inputs[0].Shape[0] = -1;

        await FailsAsync(_digits, request, DigitsPrefix, "input 'image' has shape [-1, 1, 8, 8]", "cannot be negative");
    }

    [Fact]
    public async Task ModelInfer_RawByteLengthMismatch_InvalidArgumentNamingBothLengths()
    {
        var request = Wire.DigitsRaw(DigitsEval.Images(0, 1));
        request.Inputs[0].Shape[0] = 2;

        await FailsAsync(_digits, request, DigitsPrefix, "input 'image' raw contents hold 256 bytes", "[2, 1, 8, 8] of FP32 needs 512");
    }

    [Fact]
    public async Task ModelInfer_UnknownInput_InvalidArgumentNamingInputsAndMissingOne()
    {
        var request = Wire.DigitsEvalRaw(0, 1);
        request.Inputs[0].Name = "pixels";

        await FailsAsync(_digits, request, DigitsPrefix, "'pixels' is not an input of the model (inputs: image (FP32 [-1, 1, 8, 8]))", "input image (FP32 [-1, 1, 8, 8]) is missing");
    }

    [Fact]
    public async Task ModelInfer_MissingInput_InvalidArgumentNamingIt()
    {
        var request = TypedModelRaw(DatatypeSamples.All.Where(c => c.Datatype != "INT8"));

        await FailsAsync(_fixtures, request, "Invalid request for model 'typed':", "input in_int8 (INT8 [-1, 3]) is missing");
    }

    [Fact]
    public async Task ModelInfer_DuplicatedInput_InvalidArgumentNamingIt()
    {
        var request = Wire.DigitsEvalRaw(0, 1);
        request.Inputs.Add(request.Inputs[0].Clone());
        request.RawInputContents.Add(request.RawInputContents[0]);

        await FailsAsync(_digits, request, DigitsPrefix, "input 'image' appears twice");
    }

    [Fact]
    public async Task ModelInfer_RawAndTypedMixed_InvalidArgument()
    {
        var request = Wire.DigitsTyped(DigitsEval.Images(0, 1));
        request.RawInputContents.Add(Wire.Raw(DigitsEval.Images(0, 1)));

        await FailsAsync(_digits, request, DigitsPrefix, "input 'image' has typed contents while the request also uses raw_input_contents");
    }

    [Fact]
    public async Task ModelInfer_RawAndTypedMixedAcrossInputs_InvalidArgument()
    {
        var request = TypedModelRaw(DatatypeSamples.All);
        var fp32 = DatatypeSamples.Named("FP32");
        request.Inputs.Single(i => i.Name == fp32.Input).Contents = fp32.Typed!.Clone();

        await FailsAsync(_fixtures, request, "input 'in_float' has typed contents while the request also uses raw_input_contents");
    }

    [Fact]
    public async Task ModelInfer_NoInputs_InvalidArgumentNamingExpectedInputs()
    {
        var request = new ModelInferRequest { ModelName = Wire.Digits };

        await FailsAsync(_digits, request, DigitsPrefix, "the request has no inputs; the model expects image (FP32 [-1, 1, 8, 8])");
    }

    [Fact]
    public async Task ModelInfer_MoreRawEntriesThanInputs_InvalidArgument()
    {
        var request = Wire.DigitsEvalRaw(0, 1);
        request.RawInputContents.Add(request.RawInputContents[0]);

        await FailsAsync(_digits, request, DigitsPrefix, "raw_input_contents has 2 entries for 1 inputs");
    }

    [Fact]
    public async Task ModelInfer_FewerRawEntriesThanInputs_InvalidArgument()
    {
        var request = TypedModelRaw(DatatypeSamples.All);
        request.RawInputContents.RemoveAt(request.RawInputContents.Count - 1);

        await FailsAsync(_fixtures, request, "raw_input_contents has 12 entries for 13 inputs");
    }

    [Fact]
    public async Task ModelInfer_BatchZero_InvalidArgument()
    {
        var request = Wire.DigitsInput(0);
        request.RawInputContents.Add(ByteString.Empty);

        await FailsAsync(_digits, request, DigitsPrefix, "input 'image' has batch size 0");
    }

    [Fact]
    public async Task ModelInfer_BatchAboveMax_InvalidArgumentNamingMax()
    {
        var request = Wire.DigitsInput(65);
        request.RawInputContents.Add(ByteString.CopyFrom(new byte[65 * 64 * 4]));

        await FailsAsync(_digits, request, DigitsPrefix, "input 'image' has batch size 65, above the model's max_batch_size of 64");
    }

    [Fact]
    public async Task ModelInfer_InputsWithDifferentBatches_InvalidArgument()
    {
        var request = TypedModelRaw(DatatypeSamples.All);
        var fp64 = request.Inputs.Single(i => i.Name == "in_double");
        fp64.Shape[0] = 1;
        request.RawInputContents[request.Inputs.IndexOf(fp64)] = ByteString.CopyFrom(new byte[3 * 8]);

        await FailsAsync(_fixtures, request, "input 'in_double' has batch size 1 but an earlier input has 2");
    }

    [Fact]
    public async Task ModelInfer_TypedElementCountMismatch_InvalidArgumentNamingCounts()
    {
        var request = Wire.DigitsTyped(DigitsEval.Images(0, 1));
        request.Inputs[0].Contents.Fp32Contents.RemoveAt(0);

        await FailsAsync(_digits, request, DigitsPrefix, "input 'image' has 63 elements in fp32_contents; shape [1, 1, 8, 8] needs 64");
    }

    [Fact]
    public async Task ModelInfer_TypedWithoutContents_InvalidArgument()
    {
        var request = Wire.DigitsInput(1);

        await FailsAsync(_digits, request, DigitsPrefix, "input 'image' has 0 elements in fp32_contents; shape [1, 1, 8, 8] needs 64");
    }

    [Fact]
    public async Task ModelInfer_WrongTypedField_InvalidArgumentNamingRightField()
    {
        var request = Wire.DigitsInput(1);
        request.Inputs[0].Contents = new InferTensorContents();
        request.Inputs[0].Contents.IntContents.Add(new int[64]);

        await FailsAsync(_digits, request, DigitsPrefix, "input 'image' is FP32, so its elements go in fp32_contents, but the request filled int_contents");
    }

    [Fact]
    public async Task ModelInfer_UnknownRequestedOutput_InvalidArgumentNamingOutputs()
    {
        var request = Wire.DigitsEvalRaw(0, 1);
        request.Outputs.Add(new ModelInferRequest.Types.InferRequestedOutputTensor { Name = "probabilities" });

        await FailsAsync(_digits, request, DigitsPrefix, "requested output 'probabilities' is not an output of the model (outputs: logits (FP32 [-1, 10]))");
    }

    [Fact]
    public async Task ModelInfer_OutputRequestedTwice_InvalidArgument()
    {
        var request = Wire.DigitsEvalRaw(0, 1);
        request.Outputs.Add(new ModelInferRequest.Types.InferRequestedOutputTensor { Name = Wire.Logits });
        request.Outputs.Add(new ModelInferRequest.Types.InferRequestedOutputTensor { Name = Wire.Logits });

        await FailsAsync(_digits, request, DigitsPrefix, "output 'logits' is requested twice");
    }

    [Fact]
    public async Task ModelInfer_UnsupportedOutputParameter_InvalidArgument()
    {
        var request = Wire.DigitsEvalRaw(0, 1);
        request.Outputs.Add(new ModelInferRequest.Types.InferRequestedOutputTensor { Name = Wire.Logits, Parameters = { ["classification"] = Wire.Integer(3) } });

        await FailsAsync(_digits, request, DigitsPrefix, "output parameter 'classification' (on 'logits') is not supported");
    }

    [Fact]
    public async Task ModelInfer_UnknownEffServeParameter_InvalidArgumentListingKnownOnes()
    {
        await FailsWithParameterAsync("effserve.foo", Wire.Text("bar"), "'effserve.foo' is not an EffServe parameter", "effserve.variant", "effserve.exit_threshold", "effserve.slo_ms");
    }

    [Fact]
    public async Task ModelInfer_ExitThresholdAboveOne_InvalidArgumentNamingRange()
    {
        await FailsWithParameterAsync("effserve.exit_threshold", Wire.Real(1.5), "effserve.exit_threshold is 1.5; it must lie in [0, 1]");
    }

    [Fact]
    public async Task ModelInfer_ExitThresholdNegative_InvalidArgument()
    {
        await FailsWithParameterAsync("effserve.exit_threshold", Wire.Real(-0.1), "effserve.exit_threshold is -0.1");
    }

    [Fact]
    public async Task ModelInfer_ExitThresholdString_InvalidArgumentNamingExpectedType()
    {
        await FailsWithParameterAsync("effserve.exit_threshold", Wire.Text("0.5"), "effserve.exit_threshold must be a finite double_param or an int64_param; got a string_param");
    }

    [Fact]
    public async Task ModelInfer_ExitThresholdNaN_InvalidArgument()
    {
        await FailsWithParameterAsync("effserve.exit_threshold", Wire.Real(double.NaN), "effserve.exit_threshold must be a finite double_param");
    }

    [Fact]
    public async Task ModelInfer_VariantNotString_InvalidArgument()
    {
        await FailsWithParameterAsync("effserve.variant", Wire.Integer(1), "effserve.variant must be a string_param; got an int64_param");
    }

    [Fact]
    public async Task ModelInfer_UnknownVariant_InvalidArgumentListingVariants()
    {
        var request = Wire.DigitsEvalRaw(0, 1);
        request.Parameters.Add("effserve.variant", Wire.Text("int4"));

        await FailsAsync(_digits, request, "effserve.variant 'int4' is not a variant of model 'digits' (variants: fp32, early-exit, int8, fp16)");
    }

    [Fact]
    public async Task ModelInfer_ExitThresholdWithFp32Pinned_InvalidArgument()
    {
        var request = Wire.DigitsEvalRaw(0, 1);
        request.Parameters.Add("effserve.variant", Wire.Text("fp32"));
        request.Parameters.Add("effserve.exit_threshold", Wire.Real(0.5));

        await FailsAsync(_digits, request, "effserve.exit_threshold applies to early-exit variants; variant 'fp32' is fp32");
    }

    [Fact]
    public async Task ModelInfer_ExitThresholdOnModelWithoutEarlyExit_InvalidArgument()
    {
        var request = AddRequest([1, 2, 3, 4]);
        request.Parameters.Add("effserve.exit_threshold", Wire.Real(0.5));

        await FailsAsync(_fixtures, request, "effserve.exit_threshold needs an early-exit variant, and model 'add' has none loaded");
    }

    [Fact]
    public async Task ModelInfer_CacheSometimes_InvalidArgumentListingModes()
    {
        await FailsWithParameterAsync("effserve.cache", Wire.Text("sometimes"), "effserve.cache is 'sometimes'; use 'use', 'bypass' or 'refresh'");
    }

    [Fact]
    public async Task ModelInfer_NegativePriority_InvalidArgument()
    {
        await FailsWithParameterAsync("priority", Wire.Integer(-1), "priority is -1");
    }

    [Fact]
    public async Task ModelInfer_TimeoutNotInteger_InvalidArgument()
    {
        await FailsWithParameterAsync("timeout", Wire.Real(1.5), "timeout must be an int64_param");
    }

    [Fact]
    public async Task ModelInfer_NonPositiveSlo_InvalidArgument()
    {
        await FailsWithParameterAsync("effserve.slo_ms", Wire.Real(0), "effserve.slo_ms is 0; a latency budget must be positive");
    }

    [Fact]
    public async Task ModelInfer_MinAccuracyAboveOne_InvalidArgument()
    {
        await FailsWithParameterAsync("effserve.min_accuracy", Wire.Real(1.2), "effserve.min_accuracy is 1.2");
    }

    [Fact]
    public async Task ModelInfer_NegativeCostCap_InvalidArgument()
    {
        await FailsWithParameterAsync("effserve.max_cost_usd", Wire.Real(-1), "effserve.max_cost_usd is -1");
    }

    [Fact]
    public async Task ModelInfer_SeveralProblems_ReportsThemAll()
    {
        var request = Wire.DigitsEvalRaw(0, 1);
        request.Parameters.Add("effserve.foo", Wire.Text("x"));
        request.Parameters.Add("effserve.cache", Wire.Text("sometimes"));

        await FailsAsync(_digits, request, "'effserve.foo'", "'sometimes'");
    }

    [Fact]
    public async Task ModelInfer_GpuVariantPinnedOnCpuBuild_UnavailableWithSkipReason()
    {
        var request = AddRequest([1, 2, 3, 4]);
        request.Parameters.Add("effserve.variant", Wire.Text("gpu"));

        await RpcAssert.FailsAsync(
            StatusCode.Unavailable,
            () => _fixtures.ModelInferAsync(request, cancellationToken: Ct).ResponseAsync,
            "Variant 'gpu' of model 'add' cannot run on this replica:", "cuda");
    }

    [Fact]
    public async Task ModelInfer_InvalidRequest_ServerStillAnswersNextOne()
    {
        var bad = Wire.DigitsEvalRaw(0, 1);
        bad.Inputs[0].Datatype = "FLOAT";
        await Assert.ThrowsAsync<RpcException>(() => _digits.ModelInferAsync(bad, cancellationToken: Ct).ResponseAsync);

        var response = await _digits.ModelInferAsync(Wire.DigitsEvalRaw(0, 1), cancellationToken: Ct);

        Assert.Single(response.Outputs);
    }

    /// <summary>A raw request to <c>typed</c> carrying the given datatypes' samples.</summary>
    internal static ModelInferRequest TypedModelRaw(IEnumerable<DatatypeCase> cases)
    {
        var request = new ModelInferRequest { ModelName = "typed" };
        foreach (var c in cases)
        {
            request.Inputs.Add(new InputTensor { Name = c.Input, Datatype = c.Datatype, Shape = { DatatypeCase.Shape } });
            request.RawInputContents.Add(c.Raw);
        }

        return request;
    }

    internal static ModelInferRequest AddRequest(float[] x) => new()
    {
        ModelName = "add",
        Inputs = { new InputTensor { Name = "x", Datatype = "FP32", Shape = { x.Length / 4, 4 } } },
        RawInputContents = { Wire.Raw<float>(x) },
    };

    private static Task FailsAsync(GRPCInferenceService.GRPCInferenceServiceClient client, ModelInferRequest request, params string[] fragments) =>
        RpcAssert.FailsAsync(StatusCode.InvalidArgument, () => client.ModelInferAsync(request, cancellationToken: Ct).ResponseAsync, fragments);

    private Task FailsWithParameterAsync(string key, InferParameter value, params string[] fragments)
    {
        var request = Wire.DigitsEvalRaw(0, 1);
        request.Parameters.Add(key, value);
        return FailsAsync(_digits, request, ["Invalid request parameters:", .. fragments]);
    }
}
