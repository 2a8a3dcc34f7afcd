using EffServe.Contracts.Inference;
using EffServe.Inference.Tests.Support;
using EffServe.Testing;
using Grpc.Core;

namespace EffServe.Inference.Tests;

/// <summary>ModelStatistics after a known history of requests, each test on a fresh server.</summary>
public sealed class StatisticsTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task ModelStatistics_KnownHistory_CountsSamplesExecutionsSuccessesAndFailures()
    {
        await using var server = await InferenceServer.StartAsync(RepoPaths.Zoo);
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(server.Channel);

        // 3 × batch 1, 2 × batch 4 (one of them early exit), 1 × batch 60: 6 executions, 71 samples.
        for (var i = 0; i < 3; i++)
        {
            await client.ModelInferAsync(Wire.DigitsEvalRaw(i, 1), cancellationToken: Ct);
        }

        await client.ModelInferAsync(Wire.DigitsEvalRaw(0, 4), cancellationToken: Ct);
        var earlyExit = Wire.DigitsEvalRaw(4, 4);
        earlyExit.Parameters.Add("effserve.variant", Wire.Text("early-exit"));
        await client.ModelInferAsync(earlyExit, cancellationToken: Ct);
        await client.ModelInferAsync(Wire.DigitsEvalRaw(0, 60), cancellationToken: Ct);

        // 2 failures of the model: a bad tensor and a bad parameter. An unknown model counts for no model.
        var badShape = Wire.DigitsEvalRaw(0, 1);
        badShape.Inputs[0].Shape[1] = 2;
        await Assert.ThrowsAsync<RpcException>(() => client.ModelInferAsync(badShape, cancellationToken: Ct).ResponseAsync);
        var badParameter = Wire.DigitsEvalRaw(0, 1);
        badParameter.Parameters.Add("effserve.cache", Wire.Text("sometimes"));
        await Assert.ThrowsAsync<RpcException>(() => client.ModelInferAsync(badParameter, cancellationToken: Ct).ResponseAsync);
        var unknown = Wire.DigitsEvalRaw(0, 1);
        unknown.ModelName = "mnist";
        await Assert.ThrowsAsync<RpcException>(() => client.ModelInferAsync(unknown, cancellationToken: Ct).ResponseAsync);

        var response = await client.ModelStatisticsAsync(new ModelStatisticsRequest { Name = Wire.Digits }, cancellationToken: Ct);

        var stats = Assert.Single(response.ModelStats);
        Assert.Equal((Wire.Digits, "1"), (stats.Name, stats.Version));
        Assert.Equal(71UL, stats.InferenceCount);
        Assert.Equal(6UL, stats.ExecutionCount);
        Assert.True(stats.LastInference > 0, "last_inference is set after a success.");
        var inference = stats.InferenceStats;
        Assert.Equal(6UL, inference.Success.Count);
        Assert.Equal(2UL, inference.Fail.Count);
        Assert.Equal(6UL, inference.Queue.Count);
        Assert.Equal(6UL, inference.ComputeInput.Count);
        Assert.Equal(6UL, inference.ComputeInfer.Count);
        Assert.Equal(6UL, inference.ComputeOutput.Count);
        Assert.True(inference.ComputeInfer.Ns > 0);
        Assert.Equal(0UL, inference.CacheHit.Count);
        Assert.Equal(0UL, inference.CacheMiss.Count);
        Assert.Equal([1UL, 4UL, 60UL], stats.BatchStats.Select(b => b.BatchSize));
        Assert.Equal([3UL, 2UL, 1UL], stats.BatchStats.Select(b => b.ComputeInfer.Count));
        Assert.Equal([3UL, 2UL, 1UL], stats.BatchStats.Select(b => b.ComputeInput.Count));
        Assert.Equal([3UL, 2UL, 1UL], stats.BatchStats.Select(b => b.ComputeOutput.Count));
    }

    [Fact]
    public async Task ModelStatistics_FreshServer_IsZero()
    {
        await using var server = await InferenceServer.StartAsync(RepoPaths.Zoo);
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(server.Channel);

        var response = await client.ModelStatisticsAsync(new ModelStatisticsRequest { Name = Wire.Digits, Version = "1" }, cancellationToken: Ct);

        var stats = Assert.Single(response.ModelStats);
        Assert.Equal(0UL, stats.InferenceCount);
        Assert.Equal(0UL, stats.ExecutionCount);
        Assert.Equal(0UL, stats.LastInference);
        Assert.Equal(0UL, stats.InferenceStats.Success.Count);
        Assert.Equal(0UL, stats.InferenceStats.Fail.Count);
        Assert.Empty(stats.BatchStats);
    }

    [Fact]
    public async Task ModelStatistics_EmptyName_ListsEveryModelInNameOrder()
    {
        await using var server = await InferenceServer.StartAsync(RepoPaths.FixtureZoo);
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(server.Channel);
        await client.ModelInferAsync(InvalidRequestTests.AddRequest([1, 2, 3, 4, 5, 6, 7, 8]), cancellationToken: Ct);

        var response = await client.ModelStatisticsAsync(new ModelStatisticsRequest(), cancellationToken: Ct);

        Assert.Equal(["add", "typed", "typed-bf16"], response.ModelStats.Select(s => s.Name));
        var add = response.ModelStats[0];
        Assert.Equal(2UL, add.InferenceCount);
        Assert.Equal(1UL, add.ExecutionCount);
        Assert.Equal(2UL, Assert.Single(add.BatchStats).BatchSize);
        Assert.Equal(0UL, response.ModelStats[1].InferenceCount);
    }

    [Fact]
    public async Task ModelStatistics_UnknownModel_NotFound()
    {
        await using var server = await InferenceServer.StartAsync(RepoPaths.Zoo);
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(server.Channel);

        await RpcAssert.FailsAsync(
            StatusCode.NotFound,
            () => client.ModelStatisticsAsync(new ModelStatisticsRequest { Name = "mnist" }, cancellationToken: Ct).ResponseAsync,
            "'mnist'", "digits");
        await RpcAssert.FailsAsync(
            StatusCode.NotFound,
            () => client.ModelStatisticsAsync(new ModelStatisticsRequest { Name = Wire.Digits, Version = "2" }, cancellationToken: Ct).ResponseAsync,
            "version '2'");
    }
}
