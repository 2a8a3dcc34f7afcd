using EffServe.Contracts.Jobs;
using EffServe.Core.Jobs;
using EffServe.Testing;
using StackExchange.Redis;
using static EffServe.Redis.Tests.Digits;

namespace EffServe.Redis.Tests;

/// <summary>
/// A job worker that crashes: a replica in a process of its own is killed with SIGKILL mid-job, so
/// none of its shutdown code runs and what it had taken stays unacknowledged under its name in Redis.
/// </summary>
public sealed class JobCrashTests
{
    private const int Items = 1000;

    [Fact]
    public async Task Workers_ReplicaProcessSigkilledMidJob_SurvivorClaimsItsItemsEveryResultExactlyOnce()
    {
        await using var redis = await RedisServer.StartAsync();
        (string, string)[] more = [("EffServe:Jobs:VisibilityTimeoutSeconds", "2"), ("EffServe:Jobs:MaxInFlight", "4")];
        var victimSettings = Settings(redis, more: more);
        victimSettings["EffServe:Inference:Models:0"] = Model;
        await using var victim = await InferenceProcess.StartAsync(RepoPaths.Zoo, victimSettings, cancellationToken: Ct);
        await using var survivor = await StartAsync(Settings(redis, more: more));
        await using var connection = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString);
        var queue = JobKeys.Queue(Model, 0);

        // Every worker names itself host-pid-random; the victim's pending items are found by its pid.
        var victimConsumer = $"-{victim.Pid}-";
        async Task<long> VictimPendingAsync() =>
            (await connection.GetDatabase().StreamPendingAsync(queue, JobKeys.Group))
                .Consumers?.Where(c => c.Name.ToString().Contains(victimConsumer, StringComparison.Ordinal)).Sum(c => (long)c.PendingMessageCount) ?? 0;

        var submitted = await Jobs(survivor).SubmitJobAsync(Job(Items), deadline: Deadline(), cancellationToken: Ct);
        Task<GetJobResponse> GetAsync() => Digits.GetAsync(survivor, submitted.JobId);

        await UntilAsync(async () => (await GetAsync()).Succeeded >= Items / 5, "a fifth of the items are done");

        // Frozen (SIGSTOP), the victim can neither finish nor take items, so what it holds while frozen is
        // what it holds when killed; between two items it may hold nothing, so it is let go on until it does.
        long heldAtKill = 0;
        var pauses = 0;
        await UntilAsync(
            async () =>
            {
                pauses++;
                await victim.PauseAsync(Ct);
                await Task.Delay(100, Ct); // commands it had already sent reach Redis
                heldAtKill = await VictimPendingAsync();
                if (heldAtKill == 0)
                {
                    await victim.ResumeAsync(Ct);
                }

                return heldAtKill > 0;
            },
            "the victim is caught holding unacknowledged items");
        var exitCode = await victim.KillAsync();
        Assert.True(victim.HasExited);
        Assert.Equal(128 + 9, exitCode); // ended by SIGKILL
        var doneAtKill = (await GetAsync()).Succeeded;

        await UntilAsync(async () => (await GetAsync()).State == JobState.Completed, "the job completes on the survivor", seconds: 50);
        var streamed = await StreamAsync(survivor, submitted.JobId);

        Assert.Equal(Items, streamed.Count);
        Assert.Equal(Enumerable.Range(0, Items).Select(i => (ulong)i), streamed.Select(r => r.Index).Order());
        Assert.All(streamed, r => Assert.Equal(JobResult.OutcomeOneofCase.Response, r.OutcomeCase));
        var final = await GetAsync();
        Assert.Equal((ulong)Items, final.Succeeded);
        Assert.Equal(0ul, final.Failed);

        // What it held was claimed by the survivor: run there, or only acknowledged when its result was already written.
        await UntilAsync(async () => await VictimPendingAsync() == 0, "nothing is left pending under the killed replica's name");
        TestContext.Current.TestOutputHelper?.WriteLine(
            $"{doneAtKill} items done when the replica process was killed (SIGKILL), holding {heldAtKill} unacknowledged (caught at pause {pauses}); {Items} results, each once.");
    }
}
