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
        var submitted = await jobs.SubmitJobAsync(job, deadline: Deadline(), cancellationToken: Ct);
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
}
