using EffServe.Contracts.Inference;
using EffServe.Inference.Serving;
using EffServe.Inference.Tests.Support;
using EffServe.Testing;
using Grpc.Core;
using Microsoft.Extensions.DependencyInjection;

namespace EffServe.Inference.Tests;

/// <summary>
/// Selection, queueing and shedding against a real service. Tests that need requests to wait hold
/// the only run slot themselves, so what waits and what is shed never depends on timing.
/// </summary>
public sealed class SloServingTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static Task<InferenceServer> StartAsync(params (string Key, string Value)[] settings)
    {
        var all = new Dictionary<string, string?> { ["EffServe:Inference:MaxConcurrentRuns"] = "1" };
        foreach (var (key, value) in settings)
        {
            all[key] = value;
        }

        return InferenceServer.StartAsync(RepoPaths.Zoo, all);
    }

    private static async Task WaitForQueuedAsync(InferenceEngine engine, int online, int background = 0)
    {
        while (engine.QueuedRequests != online || engine.QueuedBackgroundRequests != background)
        {
            await Task.Delay(5, Ct);
        }
    }

    private static ModelInferRequest Request(int sample, params (string Key, InferParameter Value)[] parameters)
    {
        var request = Wire.DigitsEvalRaw(sample, 1);
        foreach (var (key, value) in parameters)
        {
            request.Parameters.Add(key, value);
        }

        return request;
    }

    [Fact]
    public async Task Burst_AboveTheQueueBound_ShedWithResourceExhaustedWhileTheQueueStaysBounded()
    {
        await using var server = await StartAsync(("EffServe:Selection:MaxQueuedRequests", "4"));
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(server.Channel);
        var engine = server.Services.GetRequiredService<InferenceEngine>();
        var slots = server.Services.GetRequiredService<RunSlots>();
        await slots.WaitAsync(Ct);
        List<Task<ModelInferResponse>> waiting;
        try
        {
            waiting = [.. Enumerable.Range(0, 4).Select(i => client.ModelInferAsync(Request(i), cancellationToken: Ct).ResponseAsync)];
            await WaitForQueuedAsync(engine, 4);

            var burst = Enumerable.Range(4, 12).Select(i => client.ModelInferAsync(Request(i), cancellationToken: Ct).ResponseAsync).ToList();
            foreach (var call in burst)
            {
                await RpcAssert.FailsAsync(StatusCode.ResourceExhausted, () => call, "Model 'digits' is overloaded", "4 requests already wait", "EffServe:Selection:MaxQueuedRequests", "retry after about");
                Assert.Equal(4, engine.QueuedRequests);
            }
        }
        finally
        {
            slots.Release();
        }

        var answers = await Task.WhenAll(waiting);
        Assert.All(answers, a => Assert.Equal("slo-aware", Wire.StringParameter(a, "effserve.policy")));
        Assert.Equal(0, engine.QueuedRequests);
    }

    [Fact]
    public async Task Cancelled_WhileQueued_LeavesAtOnceAndFreesItsPlace()
    {
        await using var server = await StartAsync(("EffServe:Selection:MaxQueuedRequests", "1"));
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(server.Channel);
        var engine = server.Services.GetRequiredService<InferenceEngine>();
        var slots = server.Services.GetRequiredService<RunSlots>();
        await slots.WaitAsync(Ct);
        Task<ModelInferResponse> next;
        try
        {
            using var cancel = CancellationTokenSource.CreateLinkedTokenSource(Ct);
            var first = client.ModelInferAsync(Request(0), cancellationToken: cancel.Token).ResponseAsync;
            await WaitForQueuedAsync(engine, 1);
            await RpcAssert.FailsAsync(StatusCode.ResourceExhausted, () => client.ModelInferAsync(Request(1), cancellationToken: Ct).ResponseAsync, "overloaded");

            await cancel.CancelAsync();
            await RpcAssert.FailsAsync(StatusCode.Cancelled, () => first);
            await WaitForQueuedAsync(engine, 0);

            next = client.ModelInferAsync(Request(2), cancellationToken: Ct).ResponseAsync;
            await WaitForQueuedAsync(engine, 1);
        }
        finally
        {
            slots.Release();
        }

        Assert.Single((await next).Outputs);
    }

    [Fact]
    public async Task SloPassesWhileQueued_DroppedBeforeComputeWithDeadlineExceeded()
    {
        await using var server = await StartAsync();
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(server.Channel);
        var engine = server.Services.GetRequiredService<InferenceEngine>();
        var slots = server.Services.GetRequiredService<RunSlots>();
        await slots.WaitAsync(Ct);
        try
        {
            var late = client.ModelInferAsync(Request(0, ("effserve.slo_ms", Wire.Real(100))), cancellationToken: Ct).ResponseAsync;

            await RpcAssert.FailsAsync(StatusCode.DeadlineExceeded, () => late, "dropped the request before running it", "effserve.slo_ms budget of 100 ms");
            Assert.Equal(0, engine.QueuedRequests);
        }
        finally
        {
            slots.Release();
        }
    }

    [Fact]
    public async Task HigherPriority_RunsFirst()
    {
        await using var server = await StartAsync();
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(server.Channel);
        var engine = server.Services.GetRequiredService<InferenceEngine>();
        var slots = server.Services.GetRequiredService<RunSlots>();
        Task<ModelInferResponse> low, high;
        await slots.WaitAsync(Ct);
        try
        {
            // Different variants, so the two cannot share a batch.
            low = client.ModelInferAsync(Request(0, ("priority", Wire.Integer(2)), ("effserve.variant", Wire.Text("int8"))), cancellationToken: Ct).ResponseAsync;
            await WaitForQueuedAsync(engine, 1);
            high = client.ModelInferAsync(Request(1, ("priority", Wire.Integer(1)), ("effserve.variant", Wire.Text("fp32"))), cancellationToken: Ct).ResponseAsync;
            await WaitForQueuedAsync(engine, 2);
        }
        finally
        {
            slots.Release();
        }

        // The low one came first but waited for the high one's run as well.
        var (lowAnswer, highAnswer) = (await low, await high);
        Assert.True(Wire.Int64Parameter(lowAnswer, "effserve.queue_us") > Wire.Int64Parameter(highAnswer, "effserve.queue_us"));
    }

    [Fact]
    public async Task Background_RunsOnlyWhenNoOnlineRequestWaits()
    {
        await using var server = await StartAsync();
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(server.Channel);
        var engine = server.Services.GetRequiredService<InferenceEngine>();
        var slots = server.Services.GetRequiredService<RunSlots>();
        Task<ModelInferResponse> job, online;
        await slots.WaitAsync(Ct);
        try
        {
            job = engine.InferAsync(Request(0, ("effserve.variant", Wire.Text("int8"))), InferenceOrigin.Background, Ct);
            await WaitForQueuedAsync(engine, 0, background: 1);
            online = client.ModelInferAsync(Request(1, ("effserve.variant", Wire.Text("fp32"))), cancellationToken: Ct).ResponseAsync;
            await WaitForQueuedAsync(engine, 1, background: 1);
        }
        finally
        {
            slots.Release();
        }

        var (jobAnswer, onlineAnswer) = (await job, await online);
        Assert.True(Wire.Int64Parameter(jobAnswer, "effserve.queue_us") > Wire.Int64Parameter(onlineAnswer, "effserve.queue_us"));
    }

    [Fact]
    public async Task NothingFits_Shed_DeadlineExceededSaysWhy()
    {
        await using var server = await StartAsync();
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(server.Channel);

        await RpcAssert.FailsAsync(StatusCode.DeadlineExceeded,
            () => client.ModelInferAsync(Request(0, ("effserve.slo_ms", Wire.Real(0.0001))), cancellationToken: Ct).ResponseAsync,
            "Model 'digits' shed the request at once", "cannot be met", "is predicted to take", "queued ahead");
    }

    [Fact]
    public async Task PinnedVariant_BudgetItCannotMeet_ShedWithDeadlineExceeded()
    {
        await using var server = await StartAsync();
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(server.Channel);

        await RpcAssert.FailsAsync(StatusCode.DeadlineExceeded,
            () => client.ModelInferAsync(Request(0, ("effserve.variant", Wire.Text("fp32")), ("effserve.slo_ms", Wire.Real(0.0001))), cancellationToken: Ct).ResponseAsync,
            "variant 'fp32'", "cannot be met");
    }

    [Fact]
    public async Task NothingFits_Fastest_ServedByTheFastestChoice()
    {
        await using var server = await StartAsync(("EffServe:Selection:WhenNothingFits", "fastest"));
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(server.Channel);

        var response = await client.ModelInferAsync(Request(0, ("effserve.slo_ms", Wire.Real(0.0001))), cancellationToken: Ct);

        // Early exit at threshold 0 leaves after the first stage: the least work of all.
        Assert.Equal("early-exit", Wire.StringParameter(response, "effserve.variant"));
        Assert.Equal(0, Wire.DoubleParameter(response, "effserve.exit_threshold"));
        Assert.Equal(1, Wire.Int64Parameter(response, "effserve.exit_stage"));
    }

    [Fact]
    public async Task FixedPolicy_ServesTheConfiguredVariantAndSaysSo()
    {
        await using var server = await StartAsync(("EffServe:Selection:Policy", "fixed"), ("EffServe:Selection:Variant", "int8"));
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(server.Channel);

        var response = await client.ModelInferAsync(Request(0, ("effserve.slo_ms", Wire.Real(1000))), cancellationToken: Ct);

        Assert.Equal("int8", Wire.StringParameter(response, "effserve.variant"));
        Assert.Equal("fixed", Wire.StringParameter(response, "effserve.policy"));
    }

    [Fact]
    public async Task PerModelOverride_AppliesToThatModel()
    {
        await using var server = await StartAsync(("EffServe:Selection:Models:digits:Policy", "fastest"));
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(server.Channel);

        var response = await client.ModelInferAsync(Request(0), cancellationToken: Ct);

        Assert.Equal("fastest", Wire.StringParameter(response, "effserve.policy"));
        Assert.Equal("early-exit", Wire.StringParameter(response, "effserve.variant"));
    }

    [Fact]
    public async Task AccuracyFloor_AboveEveryVariant_InvalidArgumentSaysWhy()
    {
        await using var server = await StartAsync();
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(server.Channel);

        await RpcAssert.FailsAsync(StatusCode.InvalidArgument,
            () => client.ModelInferAsync(Request(0, ("effserve.min_accuracy", Wire.Real(0.999))), cancellationToken: Ct).ResponseAsync,
            "Model 'digits' cannot serve the request as asked", "accuracy floor 0.999 is above the most accurate variant's 0.987", "Lower effserve.min_accuracy");
    }

    [Fact]
    public async Task CostCap_BelowEveryVariant_InvalidArgumentSaysWhy()
    {
        await using var server = await StartAsync();
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(server.Channel);

        await RpcAssert.FailsAsync(StatusCode.InvalidArgument,
            () => client.ModelInferAsync(Request(0, ("effserve.max_cost_usd", Wire.Real(1e-30))), cancellationToken: Ct).ResponseAsync,
            "cost cap 1E-30 USD is below the cheapest variant's predicted");
    }

    [Fact]
    public async Task Floor_MovesTheChoiceToAVariantThatMeetsIt()
    {
        await using var server = await StartAsync();
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(server.Channel);

        // fp32 (the default) scores 0.985185 on digits; int8 and early exit at 0.7-0.9 score 0.987037.
        var response = await client.ModelInferAsync(Request(0, ("effserve.min_accuracy", Wire.Real(0.987))), cancellationToken: Ct);

        Assert.NotEqual("fp32", Wire.StringParameter(response, "effserve.variant"));
    }

    [Fact]
    public async Task ZooListing_ShowsTheLatencyModelFollowingTheRuns()
    {
        await using var server = await StartAsync();
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(server.Channel);
        for (var i = 0; i < LatencyModelRuns; i++)
        {
            await client.ModelInferAsync(Request(i, ("effserve.variant", Wire.Text("fp32"))), cancellationToken: Ct);
        }

        var listing = await new Contracts.Zoo.ZooService.ZooServiceClient(server.Channel).ListModelsAsync(new Contracts.Zoo.ListModelsRequest { Name = "digits" }, cancellationToken: Ct);

        var fp32 = listing.Models.Single().Variants.Single(v => v.Name == "fp32");
        var one = fp32.LatencyModel.Single(e => e.BatchSize == 1);
        Assert.Equal(0.0205, one.ProfileMs, 6);
        Assert.Equal(LatencyModelRuns, one.Observations);
        Assert.True(one.HasObservedMs);
        Assert.Equal(one.ObservedMs, one.PredictedMs);
        Assert.Contains(fp32.LatencyModel, e => e.BatchSize == 32 && e.HasProfileMs && e.Observations == 0);
    }

    private const int LatencyModelRuns = 6;

    [Theory]
    [InlineData("EffServe:Selection:Policy", "random", "EffServe:Selection:Policy is 'random'; use one of fastest, fixed, most-accurate, slo-aware.")]
    [InlineData("EffServe:Selection:WhenNothingFits", "queue", "EffServe:Selection:WhenNothingFits is 'queue'; use 'shed' or 'fastest'.")]
    [InlineData("EffServe:Selection:MaxQueuedRequests", "0", "EffServe:Selection:MaxQueuedRequests is 0")]
    [InlineData("EffServe:Selection:Models:digits:MaxBatchSize", "0", "EffServe:Selection:Models:digits:MaxBatchSize is 0")]
    public async Task BadSetting_RefusedAtStartWithItsPath(string key, string value, string message)
    {
        var error = await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            await using var server = await StartAsync((key, value));
        });

        Assert.Contains(message, error.ToString(), StringComparison.Ordinal);
    }
}
