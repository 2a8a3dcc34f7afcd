using EffServe.Contracts.Jobs;
using EffServe.Testing;
using Grpc.Core;
using static EffServe.Redis.Tests.Digits;

namespace EffServe.Redis.Tests;

/// <summary>The job service and its workers against a real redis-server and real inference services.</summary>
public sealed class JobTests
{
    [Fact]
    public async Task SubmitJob_WithoutRedis_UnavailableSayingRedisMustBeConfigured()
    {
        await using var server = await StartAsync(Settings(null));
        var e = await FailsAsync(() => Jobs(server).SubmitJobAsync(Job(1), deadline: Deadline(), cancellationToken: Ct).ResponseAsync);
        Assert.Equal(StatusCode.Unavailable, e.StatusCode);
        Assert.Contains("ConnectionStrings__redis", e.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SubmitJob_SmallJob_EveryResultOnceMatchingOnline()
    {
        await using var redis = await RedisServer.StartAsync();
        await using var server = await StartAsync(Settings(redis));
        var submitted = await Jobs(server).SubmitJobAsync(Job(20), deadline: Deadline(), cancellationToken: Ct);
        Assert.StartsWith("digits.", submitted.JobId, StringComparison.Ordinal);
        Assert.Equal(20ul, submitted.Items);

        var streamed = await StreamAsync(server, submitted.JobId);
        Assert.Equal(Enumerable.Range(0, 20).Select(i => (ulong)i), streamed.Select(r => r.Index).Order());
        var job = await GetAsync(server, submitted.JobId, results: true);
        Assert.Equal(JobState.Completed, job.State);
        Assert.Equal(20ul, job.Succeeded);
        Assert.Equal(20, job.Results.Count);
        var online = await InferAsync(server, Request(7, true, Text("effserve.cache", "bypass")));
        Assert.Equal(Logits(online), Logits(job.Results[7].Response));
    }

    [Fact]
    public async Task CancelJob_BeforeAnyWorker_NoItemRuns()
    {
        await using var redis = await RedisServer.StartAsync();
        await using (var front = await StartAsync(Settings(redis, more: ("EffServe:Jobs:WorkerEnabled", "false"))))
        {
            var submitted = await Jobs(front).SubmitJobAsync(Job(50), deadline: Deadline(), cancellationToken: Ct);
            var cancelled = await Jobs(front).CancelJobAsync(new CancelJobRequest { JobId = submitted.JobId }, deadline: Deadline(), cancellationToken: Ct);
            Assert.Equal(JobState.Cancelled, cancelled.State);

            await using var worker = await StartAsync(Settings(redis));
            Assert.Empty(await StreamAsync(worker, submitted.JobId)); // ends at once: cancelled, nothing written
            await Task.Delay(300, Ct);
            var job = await GetAsync(worker, submitted.JobId);
            Assert.Equal(JobState.Cancelled, job.State);
            Assert.Equal(0ul, job.Succeeded);
        }
    }

    [Fact]
    public async Task Worker_PoisonItem_DeadLetteredWithItsErrorOthersSucceed()
    {
        await using var redis = await RedisServer.StartAsync();
        await using var server = await StartAsync(Settings(redis, more: [("EffServe:Jobs:MaxAttempts", "2"), ("EffServe:Jobs:VisibilityTimeoutSeconds", "0.5")]));
        var job = Job(5);

        // The fp16 variant exists in the zoo but needs CUDA: it passes validation and fails on every
        // CPU replica. Where CUDA is present it runs, and cannot be the poison item.
        var pin = new Contracts.Inference.InferParameter { StringParam = "fp16" };
        var probe = Request(0, parameters: ("effserve.variant", pin));
        bool fp16Runs;
        try
        {
            await new Contracts.Inference.GRPCInferenceService.GRPCInferenceServiceClient(server.Channel).ModelInferAsync(probe, deadline: Deadline(), cancellationToken: Ct);
            fp16Runs = true;
        }
        catch (RpcException)
        {
            fp16Runs = false;
        }

        Assert.SkipWhen(fp16Runs, "The fp16 variant runs on this machine (CUDA present), so it is no poison item here.");
        job.Items[2].Parameters["effserve.variant"] = pin;
        var submitted = await Jobs(server).SubmitJobAsync(job, deadline: Deadline(), cancellationToken: Ct);
        var results = await StreamAsync(server, submitted.JobId);

        Assert.Equal(5, results.Count);
        var poison = results.Single(r => r.Index == 2);
        Assert.Equal(JobResult.OutcomeOneofCase.Error, poison.OutcomeCase);
        Assert.Equal("UNAVAILABLE", poison.Error.Code);
        Assert.Contains("fp16", poison.Error.Message, StringComparison.Ordinal);
        Assert.Equal(2u, poison.Error.Attempts);
        var state = await GetAsync(server, submitted.JobId);
        Assert.Equal((JobState.Completed, 4ul, 1ul), (state.State, state.Succeeded, state.Failed));
    }

    [Fact]
    public async Task SubmitJob_BadItems_ClearErrors()
    {
        await using var redis = await RedisServer.StartAsync();
        await using var server = await StartAsync(Settings(redis, more: ("EffServe:Jobs:MaxItems", "5")));
        var client = Jobs(server);

        var badShape = Job(2);
        badShape.Items[1].Inputs[0].Shape[3] = 9;
        var e = await FailsAsync(() => client.SubmitJobAsync(badShape, deadline: Deadline(), cancellationToken: Ct).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.StartsWith("Item 1: ", e.Status.Detail, StringComparison.Ordinal);

        e = await FailsAsync(() => client.SubmitJobAsync(Job(6), deadline: Deadline(), cancellationToken: Ct).ResponseAsync);
        Assert.Equal(StatusCode.ResourceExhausted, e.StatusCode);
        Assert.Contains("above the limit of 5", e.Status.Detail, StringComparison.Ordinal);

        e = await FailsAsync(() => client.SubmitJobAsync(new SubmitJobRequest { ModelName = Model }, deadline: Deadline(), cancellationToken: Ct).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains("no items", e.Status.Detail, StringComparison.Ordinal);

        var other = Job(1);
        other.Priority = 5;
        e = await FailsAsync(() => client.SubmitJobAsync(other, deadline: Deadline(), cancellationToken: Ct).ResponseAsync);
        Assert.Contains("priority is 5", e.Status.Detail, StringComparison.Ordinal);

        e = await FailsAsync(() => GetAsync(server, "nonsense"));
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains("is not a job id", e.Status.Detail, StringComparison.Ordinal);

        e = await FailsAsync(() => GetAsync(server, "digits.aaaaaaaaaaaaaaaaaaaaaaaaaa"));
        Assert.Equal(StatusCode.NotFound, e.StatusCode);
        Assert.Contains("no job", e.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Workers_TwoReplicasOneKilledMidJob_EveryItemsResultPresentExactlyOnce()
    {
        const int Items = 1000;
        await using var redis = await RedisServer.StartAsync();
        (string, string)[] settings = [("EffServe:Jobs:VisibilityTimeoutSeconds", "2"), ("EffServe:Jobs:MaxInFlight", "4")];
        var victim = await StartAsync(Settings(redis, more: settings));
        await using var survivor = await StartAsync(Settings(redis, more: settings));
        var submitted = await Jobs(survivor).SubmitJobAsync(Job(Items), deadline: Deadline(), cancellationToken: Ct);

        await UntilAsync(async () => (await GetAsync(survivor, submitted.JobId)).Succeeded >= Items / 5, "a fifth of the items are done");
        await victim.DisposeAsync(); // whatever it had taken and not acknowledged is claimed by the survivor
        var victimRan = (await GetAsync(survivor, submitted.JobId)).Succeeded;

        await UntilAsync(async () => (await GetAsync(survivor, submitted.JobId)).State == JobState.Completed, "the job completes on the survivor", seconds: 50);
        var streamed = await StreamAsync(survivor, submitted.JobId);
        Assert.Equal(Items, streamed.Count);
        Assert.Equal(Enumerable.Range(0, Items).Select(i => (ulong)i), streamed.Select(r => r.Index).Order());
        Assert.All(streamed, r => Assert.Equal(JobResult.OutcomeOneofCase.Response, r.OutcomeCase));
        var job = await GetAsync(survivor, submitted.JobId);
        Assert.Equal((ulong)Items, job.Succeeded);
        Assert.Equal(0ul, job.Failed);
        TestContext.Current.TestOutputHelper?.WriteLine($"{victimRan} items done when one replica stopped; {Items} results, each once.");
    }
}
