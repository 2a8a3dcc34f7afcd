using System.Text;
using EffServe.Contracts.Inference;
using EffServe.Inference.Tests.Support;
using Grpc.Core;
using InputTensor = EffServe.Contracts.Inference.ModelInferRequest.Types.InferInputTensor;
using OutputTensor = EffServe.Contracts.Inference.ModelInferRequest.Types.InferRequestedOutputTensor;

namespace EffServe.Inference.Tests;

/// <summary>
/// Requests with thousands of problems, or with names of a megabyte: the answer names the first few
/// problems and counts the rest, and no status outgrows 1 KiB (a larger one would break the HTTP/2
/// connection a gateway shares with other callers).
/// </summary>
public sealed class BoundedErrorTests : IClassFixture<DigitsServerFixture>
{
    private const int MaxDetailBytes = 1024;
    private const int Many = 5000;

    private readonly DigitsServerFixture _server;
    private readonly GRPCInferenceService.GRPCInferenceServiceClient _client;

    public BoundedErrorTests(DigitsServerFixture server)
    {
        _server = server;
        _client = server.Inference;
    }

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task ModelInfer_FiveThousandEmptyInputs_InvalidArgumentNamingFirstProblemsAndCount()
    {
        var request = new ModelInferRequest { ModelName = Wire.Digits };
        request.Inputs.Add(Enumerable.Range(0, Many).Select(_ => new InputTensor()));

        var error = await RpcAssert.FailsAsync(StatusCode.InvalidArgument, () => _client.ModelInferAsync(request, cancellationToken: Ct).ResponseAsync,
            "Invalid request for model 'digits':", "'' is not an input of the model", "input '' appears twice", $"({Many + 1} in all)");

        AssertBounded(error.Status.Detail);
    }

    [Fact]
    public async Task ModelInfer_FiveThousandEmptyInputsRaw_TrailerWithinBound()
    {
        // Straight from the server's trailer, as a proxy would read it.
        var request = new ModelInferRequest { ModelName = Wire.Digits };
        request.Inputs.Add(Enumerable.Range(0, Many).Select(i => new InputTensor { Name = $"input-{i}" }));
        using var raw = new RawGrpcClient(_server.Server.Address);

        var answer = await raw.CallAsync(RawGrpcClient.Inference + "ModelInfer", RawGrpcClient.Frame(Google.Protobuf.MessageExtensions.ToByteArray(request)), cancellationToken: Ct);

        Assert.Equal(StatusCode.InvalidArgument, answer.Status);
        Assert.Contains("'input-0' is not an input of the model", answer.Message, StringComparison.Ordinal);
        Assert.Contains("more problems", answer.Message, StringComparison.Ordinal);
        AssertBounded(answer.Message);
        Assert.True(answer.EncodedMessage.Length <= 3 * MaxDetailBytes, $"The grpc-message trailer is {answer.EncodedMessage.Length} bytes.");
    }

    [Fact]
    public async Task ModelInfer_FiveThousandUnknownOutputs_InvalidArgumentNamingFirstProblemsAndCount()
    {
        var request = Wire.DigitsEvalRaw(0, 1);
        request.Outputs.Add(Enumerable.Range(0, Many).Select(i => new OutputTensor { Name = $"out-{i}" }));

        var error = await RpcAssert.FailsAsync(StatusCode.InvalidArgument, () => _client.ModelInferAsync(request, cancellationToken: Ct).ResponseAsync,
            "requested output 'out-0' is not an output of the model", "requested output 'out-1'", $"({Many} in all)");

        AssertBounded(error.Status.Detail);
    }

    [Fact]
    public async Task ModelInfer_FiveThousandUnknownParameters_InvalidArgumentNamingFirstProblemsAndCount()
    {
        var request = Wire.DigitsEvalRaw(0, 1);
        for (var i = 0; i < Many; i++)
        {
            request.Parameters.Add($"effserve.unknown_{i}", Wire.Integer(i));
        }

        var error = await RpcAssert.FailsAsync(StatusCode.InvalidArgument, () => _client.ModelInferAsync(request, cancellationToken: Ct).ResponseAsync,
            "Invalid request parameters:", "is not an EffServe parameter", $"({Many} in all)");

        AssertBounded(error.Status.Detail);
    }

    [Fact]
    public async Task ModelInfer_HugeParameterName_InvalidArgumentQuotingItsStart()
    {
        var request = Wire.DigitsEvalRaw(0, 1);
        request.Parameters.Add("effserve." + new string('k', 200_000), Wire.Integer(1));

        var error = await RpcAssert.FailsAsync(StatusCode.InvalidArgument, () => _client.ModelInferAsync(request, cancellationToken: Ct).ResponseAsync,
            "'effserve.kkkk", "…' is not an EffServe parameter");

        AssertBounded(error.Status.Detail);
    }

    [Fact]
    public async Task ModelInfer_HugeInputNamesAndDatatypes_InvalidArgumentWithinBound()
    {
        var request = new ModelInferRequest { ModelName = Wire.Digits };
        request.Inputs.Add(Enumerable.Range(0, 20).Select(i => new InputTensor { Name = $"{i}-" + new string('é', 50_000), Datatype = new string('x', 50_000) }));

        var error = await RpcAssert.FailsAsync(StatusCode.InvalidArgument, () => _client.ModelInferAsync(request, cancellationToken: Ct).ResponseAsync,
            "Invalid request for model 'digits':", "is not an input of the model", "(21 in all)");

        AssertBounded(error.Status.Detail);
    }

    [Fact]
    public async Task ModelInfer_HugeModelName_NotFoundWithinBound()
    {
        var request = Wire.DigitsEvalRaw(0, 1);
        request.ModelName = new string('m', 500_000);

        var error = await RpcAssert.FailsAsync(StatusCode.NotFound, () => _client.ModelInferAsync(request, cancellationToken: Ct).ResponseAsync,
            "is not served here", "models served here: digits");

        AssertBounded(error.Status.Detail);
    }

    [Fact]
    public async Task ModelMetadata_HugeVersion_NotFoundWithinBound()
    {
        var error = await RpcAssert.FailsAsync(StatusCode.NotFound,
            () => _client.ModelMetadataAsync(new ModelMetadataRequest { Name = Wire.Digits, Version = new string('v', 300_000) }, cancellationToken: Ct).ResponseAsync,
            "Model 'digits' has no version 'vvvv");

        AssertBounded(error.Status.Detail);
    }

    [Fact]
    public async Task ModelStreamInfer_FiveThousandEmptyInputs_ErrorMessageWithinBound()
    {
        var request = new ModelInferRequest { ModelName = Wire.Digits };
        request.Inputs.Add(Enumerable.Range(0, Many).Select(_ => new InputTensor()));
        using var call = _client.ModelStreamInfer(cancellationToken: Ct);

        await call.RequestStream.WriteAsync(request, Ct);
        await call.RequestStream.CompleteAsync();
        Assert.True(await call.ResponseStream.MoveNext(Ct));

        var message = call.ResponseStream.Current.ErrorMessage;
        Assert.StartsWith("InvalidArgument: Invalid request for model 'digits':", message, StringComparison.Ordinal);
        Assert.Contains($"({Many + 1} in all)", message, StringComparison.Ordinal);
        AssertBounded(message);
    }

    [Fact]
    public async Task ListModels_HugeName_NotFoundWithinBound()
    {
        var error = await RpcAssert.FailsAsync(StatusCode.NotFound,
            () => _server.Zoo.ListModelsAsync(new Contracts.Zoo.ListModelsRequest { Name = new string('z', 300_000) }, cancellationToken: Ct).ResponseAsync,
            "is not served here");

        AssertBounded(error.Status.Detail);
    }

    [Fact]
    public async Task ModelInfer_AfterHugeErrors_WellFormedRequestSucceeds()
    {
        var request = new ModelInferRequest { ModelName = Wire.Digits };
        request.Inputs.Add(Enumerable.Range(0, Many).Select(_ => new InputTensor()));
        await RpcAssert.FailsAsync(StatusCode.InvalidArgument, () => _client.ModelInferAsync(request, cancellationToken: Ct).ResponseAsync);

        var response = await _client.ModelInferAsync(Wire.DigitsEvalRaw(0, 1), cancellationToken: Ct);

        Assert.Single(response.Outputs);
    }

    private static void AssertBounded(string detail)
    {
        var bytes = Encoding.UTF8.GetByteCount(detail);
        Assert.True(bytes <= MaxDetailBytes, $"The message is {bytes} bytes of UTF-8, above {MaxDetailBytes}: {detail[..Math.Min(detail.Length, 300)]}…");
    }
}
