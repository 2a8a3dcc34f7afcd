using EffServe.Contracts.Inference;
using EffServe.Inference.Tests.Support;
using Grpc.Core;

namespace EffServe.Inference.Tests;

/// <summary>Liveness, readiness and metadata of the server and its models, through the wire.</summary>
public sealed class ServerMetadataTests : IClassFixture<DigitsServerFixture>
{
    private readonly GRPCInferenceService.GRPCInferenceServiceClient _client;

    public ServerMetadataTests(DigitsServerFixture server)
    {
        _client = server.Inference;
    }

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task ServerLive_Running_IsLive()
    {
        var response = await _client.ServerLiveAsync(new ServerLiveRequest(), cancellationToken: Ct);

        Assert.True(response.Live);
    }

    [Fact]
    public async Task ServerReady_ZooLoaded_IsReady()
    {
        var response = await _client.ServerReadyAsync(new ServerReadyRequest(), cancellationToken: Ct);

        Assert.True(response.Ready);
    }

    [Fact]
    public async Task ServerMetadata_Always_NamesEffServeWithVersionAndExtensions()
    {
        var response = await _client.ServerMetadataAsync(new ServerMetadataRequest(), cancellationToken: Ct);

        Assert.Equal("effserve", response.Name);
        Assert.False(string.IsNullOrWhiteSpace(response.Version));
        Assert.Contains("statistics", response.Extensions);
        Assert.Contains("parameters", response.Extensions);
        Assert.Contains("effserve", response.Extensions);
    }

    [Theory]
    [InlineData("")]
    [InlineData("1")]
    public async Task ModelMetadata_Digits_DescribesPlatformVersionsAndTensors(string version)
    {
        var response = await _client.ModelMetadataAsync(new ModelMetadataRequest { Name = Wire.Digits, Version = version }, cancellationToken: Ct);

        Assert.Equal(Wire.Digits, response.Name);
        Assert.Equal("onnx_onnxv1", response.Platform);
        Assert.Equal(["1"], response.Versions);
        var input = Assert.Single(response.Inputs);
        Assert.Equal((Wire.Image, "FP32"), (input.Name, input.Datatype));
        Assert.Equal([-1L, 1, 8, 8], input.Shape);
        var output = Assert.Single(response.Outputs);
        Assert.Equal((Wire.Logits, "FP32"), (output.Name, output.Datatype));
        Assert.Equal([-1L, 10], output.Shape);
    }

    [Theory]
    [InlineData("")]
    [InlineData("1")]
    public async Task ModelConfig_Digits_TritonConfigWithoutBatchDimension(string version)
    {
        var response = await _client.ModelConfigAsync(new ModelConfigRequest { Name = Wire.Digits, Version = version }, cancellationToken: Ct);

        var config = response.Config;
        Assert.Equal(Wire.Digits, config.Name);
        Assert.Equal(("onnxruntime_onnx", "onnxruntime"), (config.Platform, config.Backend));
        Assert.True(config.MaxBatchSize > 0);
        var input = Assert.Single(config.Input);
        Assert.Equal((Wire.Image, Contracts.Inference.Config.DataType.TypeFp32), (input.Name, input.DataType));
        Assert.Equal([1L, 8, 8], input.Dims);
        var output = Assert.Single(config.Output);
        Assert.Equal((Wire.Logits, Contracts.Inference.Config.DataType.TypeFp32), (output.Name, output.DataType));
        Assert.Equal([10L], output.Dims);
        Assert.Contains("fp32", config.Parameters["effserve.variants"].StringValue.Split(','));
        Assert.NotEmpty(config.Parameters["effserve.default_variant"].StringValue);
    }

    [Fact]
    public async Task ModelConfig_UnknownModel_NotFoundNamingServedModels()
    {
        await RpcAssert.FailsAsync(
            StatusCode.NotFound,
            () => _client.ModelConfigAsync(new ModelConfigRequest { Name = "mnist" }, cancellationToken: Ct).ResponseAsync,
            "'mnist'", "models served here: digits");
    }

    [Theory]
    [InlineData("")]
    [InlineData("1")]
    public async Task ModelReady_Digits_IsReady(string version)
    {
        var response = await _client.ModelReadyAsync(new ModelReadyRequest { Name = Wire.Digits, Version = version }, cancellationToken: Ct);

        Assert.True(response.Ready);
    }

    [Fact]
    public async Task ModelMetadata_UnknownModel_NotFoundNamingServedModels()
    {
        await RpcAssert.FailsAsync(
            StatusCode.NotFound,
            () => _client.ModelMetadataAsync(new ModelMetadataRequest { Name = "mnist" }, cancellationToken: Ct).ResponseAsync,
            "'mnist'", "models served here: digits");
    }

    [Fact]
    public async Task ModelReady_UnknownModel_NotFoundNamingServedModels()
    {
        await RpcAssert.FailsAsync(
            StatusCode.NotFound,
            () => _client.ModelReadyAsync(new ModelReadyRequest { Name = "mnist" }, cancellationToken: Ct).ResponseAsync,
            "'mnist'", "models served here: digits");
    }

    [Fact]
    public async Task ModelMetadata_WrongVersion_NotFoundNamingVersions()
    {
        await RpcAssert.FailsAsync(
            StatusCode.NotFound,
            () => _client.ModelMetadataAsync(new ModelMetadataRequest { Name = Wire.Digits, Version = "2" }, cancellationToken: Ct).ResponseAsync,
            "'digits'", "version '2'", "versions: 1");
    }

    [Fact]
    public async Task ModelReady_WrongVersion_NotFound()
    {
        await RpcAssert.FailsAsync(
            StatusCode.NotFound,
            () => _client.ModelReadyAsync(new ModelReadyRequest { Name = Wire.Digits, Version = "2" }, cancellationToken: Ct).ResponseAsync,
            "version '2'");
    }

    [Fact]
    public async Task ModelMetadata_EmptyName_InvalidArgumentNamingServedModels()
    {
        await RpcAssert.FailsAsync(
            StatusCode.InvalidArgument,
            () => _client.ModelMetadataAsync(new ModelMetadataRequest(), cancellationToken: Ct).ResponseAsync,
            "model name is empty", "digits");
    }

    [Fact]
    public async Task ModelReady_EmptyName_InvalidArgument()
    {
        await RpcAssert.FailsAsync(
            StatusCode.InvalidArgument,
            () => _client.ModelReadyAsync(new ModelReadyRequest(), cancellationToken: Ct).ResponseAsync,
            "model name is empty");
    }

    [Fact]
    public async Task ModelInfer_UnknownModel_NotFound()
    {
        var request = Wire.DigitsEvalRaw(0, 1);
        request.ModelName = "mnist";

        await RpcAssert.FailsAsync(StatusCode.NotFound, () => _client.ModelInferAsync(request, cancellationToken: Ct).ResponseAsync, "'mnist'", "digits");
    }

    [Fact]
    public async Task ModelInfer_WrongVersion_NotFound()
    {
        var request = Wire.DigitsEvalRaw(0, 1);
        request.ModelVersion = "7";

        await RpcAssert.FailsAsync(StatusCode.NotFound, () => _client.ModelInferAsync(request, cancellationToken: Ct).ResponseAsync, "'digits'", "version '7'");
    }
}
