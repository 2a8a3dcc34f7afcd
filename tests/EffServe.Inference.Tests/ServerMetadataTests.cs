using EffServe.Contracts.Inference;
using EffServe.Inference.Tests.Support;
using Grpc.Core;

namespace EffServe.Inference.Tests;

/// <summary>Liveness, readiness and metadata of the server and its models, through the wire.</summary>
public sealed class ServerMetadataTests : IClassFixture<DigitsServerFixture>, IClassFixture<BatchingZooServerFixture>
{
    private readonly GRPCInferenceService.GRPCInferenceServiceClient _client;
    private readonly GRPCInferenceService.GRPCInferenceServiceClient _batching;

    public ServerMetadataTests(DigitsServerFixture server, BatchingZooServerFixture batching)
    {
        _client = server.Inference;
        _batching = batching.Inference;
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
    public async Task ModelConfig_Digits_DynamicBatchingAtProfiledSizesThatPay()
    {
        var response = await _client.ModelConfigAsync(new ModelConfigRequest { Name = Wire.Digits }, cancellationToken: Ct);

        // digits' default variant (fp32) serves at least 50 % more samples a second from batch 2 on,
        // at every size its profile measured (2 to 32, all within max_batch_size 64).
        var batching = response.Config.DynamicBatching;
        Assert.NotNull(batching);
        Assert.Equal([2, 4, 8, 16, 32], batching.PreferredBatchSize);
        Assert.Equal(0UL, batching.MaxQueueDelayMicroseconds);
        Assert.False(batching.PreserveOrdering);
    }

    [Theory]
    [InlineData("8", "0.1", new[] { 2, 4, 8 })]
    [InlineData("32", "100", null)]
    [InlineData("1", "0.1", null)]
    public async Task ModelConfig_SelectionLimits_PreferredSizesFollowHowTheServiceBatches(string maxBatchSize, string minGain, int[]? preferred)
    {
        await using var server = await EffServe.Testing.InferenceServer.StartAsync(EffServe.Testing.RepoPaths.Zoo, new Dictionary<string, string?>
        {
            ["EffServe:Inference:Models:0"] = Wire.Digits,
            ["EffServe:Selection:MaxBatchSize"] = maxBatchSize,
            ["EffServe:Selection:MinBatchingGain"] = minGain,
        });

        var response = await new GRPCInferenceService.GRPCInferenceServiceClient(server.Channel).ModelConfigAsync(new ModelConfigRequest { Name = Wire.Digits }, cancellationToken: Ct);

        // max_batch_size stays what one request may carry; batching follows the service's limits.
        Assert.Equal(64, response.Config.MaxBatchSize);
        Assert.Equal(preferred, response.Config.DynamicBatching?.PreferredBatchSize.ToArray());
    }

    [Fact]
    public async Task ModelConfig_BatchingPaysFromFour_PrefersProfiledSizesFromFourUpToMaxBatchSize()
    {
        var response = await _batching.ModelConfigAsync(new ModelConfigRequest { Name = BatchingZooServerFixture.Stepped }, cancellationToken: Ct);

        var config = response.Config;
        Assert.Equal(8, config.MaxBatchSize);
        Assert.NotNull(config.DynamicBatching);
        Assert.Equal([4, 8], config.DynamicBatching.PreferredBatchSize);
        Assert.Equal(0UL, config.DynamicBatching.MaxQueueDelayMicroseconds);
    }

    [Fact]
    public async Task ModelConfig_BatchingWithoutProfile_DynamicBatchingWithoutPreferredSizes()
    {
        var response = await _batching.ModelConfigAsync(new ModelConfigRequest { Name = BatchingZooServerFixture.Unprofiled }, cancellationToken: Ct);

        var config = response.Config;
        Assert.Equal(8, config.MaxBatchSize);
        Assert.NotNull(config.DynamicBatching);
        Assert.Empty(config.DynamicBatching.PreferredBatchSize);
        Assert.Equal(0UL, config.DynamicBatching.MaxQueueDelayMicroseconds);
    }

    [Theory]
    [InlineData(BatchingZooServerFixture.Unbatched, 0)]
    [InlineData(BatchingZooServerFixture.Single, 1)]
    public async Task ModelConfig_CannotBatch_NoDynamicBatching(string model, int maxBatchSize)
    {
        var response = await _batching.ModelConfigAsync(new ModelConfigRequest { Name = model }, cancellationToken: Ct);

        Assert.Equal(maxBatchSize, response.Config.MaxBatchSize);
        Assert.Null(response.Config.DynamicBatching);
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

/// <summary>
/// A zoo generated for the test run, of Identity models that differ in how they batch:
/// <c>unbatched</c> has no batch dimension, <c>single</c> takes one sample at most, <c>unprofiled</c>
/// batches up to 8 without a profile, and <c>stepped</c> batches up to 8 with a profile that gains
/// 5 % at batch 2 and 20 % and more from batch 4 (and a batch 16 measured beyond its limit).
/// </summary>
public sealed class BatchingZooServerFixture : ServerFixture
{
    public const string Unbatched = "unbatched";
    public const string Single = "single";
    public const string Unprofiled = "unprofiled";
    public const string Stepped = "stepped";

    private const string SteppedProfile = """
            profile:
              latency:
                - {batch_size: 1, p50_ms: 1.0, p95_ms: 1.0, items_per_second: 1000}
                - {batch_size: 2, p50_ms: 1.9, p95_ms: 1.9, items_per_second: 1050}
                - {batch_size: 4, p50_ms: 3.3, p95_ms: 3.3, items_per_second: 1200}
                - {batch_size: 8, p50_ms: 6.1, p95_ms: 6.1, items_per_second: 1300}
                - {batch_size: 16, p50_ms: 11.4, p95_ms: 11.4, items_per_second: 1400}
        """;

    private readonly string _root = Path.Combine(Path.GetTempPath(), "effserve-batching-tests-" + Guid.NewGuid().ToString("N"));

    protected override string PrepareZoo()
    {
        Write(Unbatched, maxBatchSize: 0, shape: "[2, 3]", profile: "");
        Write(Single, maxBatchSize: 1, shape: "[-1, 3]", profile: "");
        Write(Unprofiled, maxBatchSize: 8, shape: "[-1, 3]", profile: "");
        Write(Stepped, maxBatchSize: 8, shape: "[-1, 3]", profile: SteppedProfile);
        return _root;
    }

    public override async ValueTask DisposeAsync()
    {
        await base.DisposeAsync();
        if (Directory.Exists(_root))
        {
            Directory.Delete(_root, recursive: true);
        }
    }

    private void Write(string name, int maxBatchSize, string shape, string profile)
    {
        var folder = Path.Combine(_root, name);
        Directory.CreateDirectory(folder);
        File.WriteAllBytes(Path.Combine(folder, "identity.onnx"), IdentityOnnx.Build(name, [("float", 1)], width: 3));
        File.WriteAllText(Path.Combine(folder, "model.yaml"), $$"""
            name: {{name}}
            task: identity
            max_batch_size: {{maxBatchSize}}
            inputs:
              - { name: in_float, datatype: FP32, shape: {{shape}} }
            outputs:
              - { name: out_float, datatype: FP32, shape: {{shape}} }
            variants:
              - name: identity
                kind: fp32
                file: identity.onnx
            {{profile}}
            """);
    }
}
