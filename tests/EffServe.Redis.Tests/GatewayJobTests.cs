using EffServe.Contracts.Jobs;
using EffServe.Testing;
using Grpc.Core;
using static EffServe.Redis.Tests.Digits;

namespace EffServe.Redis.Tests;

/// <summary>Job calls through the gateway: SubmitJob routes by its model, the rest by the model their job id starts with.</summary>
public sealed class GatewayJobTests
{
    [Fact]
    public async Task JobService_ThroughTheGateway_RoutesByModelAndJobId()
    {
        await using var redis = await RedisServer.StartAsync();
        await using var replica = await StartAsync(Settings(redis));
        await using var gateway = await GatewayServer.StartAsync(new Dictionary<string, string?>
        {
            ["EffServe:Gateway:HealthCheckInterval"] = "00:00:00.200",
            ["EffServe:Gateway:Models:digits:Destinations:0"] = replica.Address.GetLeftPart(UriPartial.Authority),
        });
        await gateway.WaitUntilServingAsync(Model);
        var jobs = new JobService.JobServiceClient(gateway.Channel);

        var job = new SubmitJobRequest { ModelName = Model };
        job.Items.Add([Request(1), Request(2), Request(3)]);

        // A client's own effserve-tenant never reaches the replica: with no door every caller is
        // the same anonymous tenant, and the job is readable without the header.
        var submitted = await jobs.SubmitJobAsync(job, new Metadata { { "effserve-tenant", "someone" } }, Deadline(), Ct);
        using var stream = jobs.StreamJobResults(new StreamJobResultsRequest { JobId = submitted.JobId }, deadline: Deadline(), cancellationToken: Ct);
        var results = new List<JobResult>();
        while (await stream.ResponseStream.MoveNext(Ct))
        {
            results.Add(stream.ResponseStream.Current);
        }

        Assert.Equal(3, results.Count);
        var state = await jobs.GetJobAsync(new GetJobRequest { JobId = submitted.JobId }, deadline: Deadline(), cancellationToken: Ct);
        Assert.Equal(JobState.Completed, state.State);
        var cancelled = await jobs.CancelJobAsync(new CancelJobRequest { JobId = submitted.JobId }, deadline: Deadline(), cancellationToken: Ct);
        Assert.Equal(JobState.Completed, cancelled.State); // nothing left to cancel

        var e = await FailsAsync(() => jobs.GetJobAsync(new GetJobRequest { JobId = "no-such-id" }, deadline: Deadline(), cancellationToken: Ct).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains("is not a job id", e.Status.Detail, StringComparison.Ordinal);

        e = await FailsAsync(() => jobs.GetJobAsync(new GetJobRequest { JobId = "shapes.aaaaaaaaaaaaaaaaaaaaaaaaaa" }, deadline: Deadline(), cancellationToken: Ct).ResponseAsync);
        Assert.Equal(StatusCode.NotFound, e.StatusCode);
        Assert.Contains("Model 'shapes' is not served here", e.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Jobs_ThroughADoorWithTenants_OnlyTheSubmittingTenantSeesOrCancelsThem()
    {
        await using var redis = await RedisServer.StartAsync();
        await using var replica = await StartAsync(Settings(redis));
        await using var gateway = await GatewayServer.StartAsync(new Dictionary<string, string?>
        {
            ["EffServe:Gateway:HealthCheckInterval"] = "00:00:00.200",
            ["EffServe:Gateway:Models:digits:Destinations:0"] = replica.Address.GetLeftPart(UriPartial.Authority),
            ["EffServe:Gateway:Door:ApiKeys:alpha-key-0123456789"] = "alpha",
            ["EffServe:Gateway:Door:ApiKeys:beta-key-0123456789"] = "beta",
            ["EffServe:Gateway:Door:ApiKeys:gamma-key-0123456789"] = "équipe γ",
        });
        var alpha = new Metadata { { "effserve-api-key", "alpha-key-0123456789" } };
        var beta = new Metadata { { "effserve-api-key", "beta-key-0123456789" } };
        var betaPosingAsAlpha = new Metadata { { "effserve-api-key", "beta-key-0123456789" }, { "effserve-tenant", "alpha" } };
        await gateway.WaitUntilServingAsync(Model);
        var jobs = new JobService.JobServiceClient(gateway.Channel);
        var job = new SubmitJobRequest { ModelName = Model };
        job.Items.Add([Request(1), Request(2)]);
        var id = (await jobs.SubmitJobAsync(job, alpha, Deadline(), Ct)).JobId;

        foreach (var other in new[] { beta, betaPosingAsAlpha })
        {
            var e = await FailsAsync(() => jobs.GetJobAsync(new GetJobRequest { JobId = id }, other, Deadline(), Ct).ResponseAsync);
            Assert.Equal(StatusCode.NotFound, e.StatusCode);
            Assert.Contains($"There is no job '{id}' for this caller", e.Status.Detail, StringComparison.Ordinal);
            e = await FailsAsync(() => jobs.CancelJobAsync(new CancelJobRequest { JobId = id }, other, Deadline(), Ct).ResponseAsync);
            Assert.Equal(StatusCode.NotFound, e.StatusCode);
            e = await FailsAsync(async () =>
            {
                using var stream = jobs.StreamJobResults(new StreamJobResultsRequest { JobId = id }, other, Deadline(), Ct);
                await stream.ResponseStream.MoveNext(Ct);
            });
            Assert.Equal(StatusCode.NotFound, e.StatusCode);
        }

        var mine = await jobs.GetJobAsync(new GetJobRequest { JobId = id }, alpha, Deadline(), Ct);
        Assert.Equal(2ul, mine.Items);
        Assert.NotEqual(JobState.Cancelled, mine.State); // beta's cancel did nothing

        // A tenant name beyond ASCII travels encoded and still owns its jobs.
        var gamma = new Metadata { { "effserve-api-key", "gamma-key-0123456789" } };
        var gammaJob = (await jobs.SubmitJobAsync(job, gamma, Deadline(), Ct)).JobId;
        Assert.Equal(2ul, (await jobs.GetJobAsync(new GetJobRequest { JobId = gammaJob }, gamma, Deadline(), Ct)).Items);
        Assert.Equal(StatusCode.NotFound, (await FailsAsync(() => jobs.GetJobAsync(new GetJobRequest { JobId = gammaJob }, alpha, Deadline(), Ct).ResponseAsync)).StatusCode);
    }

    [Fact]
    public async Task Jobs_CalledDirectly_AClientsOwnTenantHeaderDoesNotOpenAnAnonymousJob()
    {
        // Without a gateway the service takes effserve-tenant as given: a job submitted with none
        // belongs to the anonymous caller, and a call naming a tenant is another caller.
        await using var redis = await RedisServer.StartAsync();
        await using var replica = await StartAsync(Settings(redis));
        var jobs = new JobService.JobServiceClient(replica.Channel);
        var job = new SubmitJobRequest { ModelName = Model };
        job.Items.Add(Request(1));
        var id = (await jobs.SubmitJobAsync(job, deadline: Deadline(), cancellationToken: Ct)).JobId;

        var e = await FailsAsync(() => jobs.GetJobAsync(new GetJobRequest { JobId = id }, new Metadata { { "effserve-tenant", "alpha" } }, Deadline(), Ct).ResponseAsync);

        Assert.Equal(StatusCode.NotFound, e.StatusCode);
        Assert.Equal(1ul, (await jobs.GetJobAsync(new GetJobRequest { JobId = id }, deadline: Deadline(), cancellationToken: Ct)).Items);
    }
}
