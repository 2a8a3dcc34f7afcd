using EffServe.Contracts.Inference;
using EffServe.Testing;
using Grpc.Core;
using static EffServe.Redis.Tests.Digits;

namespace EffServe.Redis.Tests;

/// <summary>The response cache of a real inference service, with a real redis-server behind it.</summary>
public sealed class CacheTests
{
    [Fact]
    public async Task ModelInfer_SameRequestTwice_MissThenHitWithoutRunning()
    {
        await using var redis = await RedisServer.StartAsync();
        await using var server = await StartAsync(Settings(redis));
        var first = await InferAsync(server, Request(1));
        var second = await InferAsync(server, Request(1));
        Assert.Equal("miss", CacheOutcome(first));
        Assert.Equal("hit", CacheOutcome(second));
        Assert.Equal(Logits(first), Logits(second));
        Assert.Equal(first.Parameters["effserve.variant"], second.Parameters["effserve.variant"]);
        Assert.Equal("r1", second.Id);
        Assert.True(second.Parameters["effserve.energy_mj"].DoubleParam >= 0);
        var stats = await StatisticsAsync(server);
        Assert.Equal(1ul, stats.ExecutionCount);
        Assert.Equal(1ul, stats.InferenceStats.CacheHit.Count);
        Assert.Equal(1ul, stats.InferenceStats.CacheMiss.Count);
        Assert.Equal(2ul, stats.InferenceCount);
    }

    [Fact]
    public async Task ModelInfer_RawThenTypedContentsOfTheSameTensor_HitInTheRequestsForm()
    {
        await using var server = await StartAsync(Settings(null));
        var raw = await InferAsync(server, Request(2, raw: true));
        var typed = await InferAsync(server, Request(2, raw: false));
        Assert.Equal("hit", CacheOutcome(typed));
        Assert.Empty(typed.RawOutputContents);
        Assert.Equal(Logits(raw), Logits(typed));
    }

    public static TheoryData<string> Changes() => ["input", "threshold", "variant", "outputs"];

    [Theory]
    [MemberData(nameof(Changes))]
    public async Task ModelInfer_OneKeyComponentChanged_Misses(string change)
    {
        await using var server = await StartAsync(Settings(null));
        var baseline = Request(3, true, Text("effserve.variant", "early-exit"), Number("effserve.exit_threshold", 0.5));
        Assert.Equal("miss", CacheOutcome(await InferAsync(server, baseline)));
        var changed = baseline.Clone();
        switch (change)
        {
            case "input":
                changed = Request(4, true, Text("effserve.variant", "early-exit"), Number("effserve.exit_threshold", 0.5));
                break;
            case "threshold":
                changed.Parameters["effserve.exit_threshold"] = new InferParameter { DoubleParam = 0.9 };
                break;
            case "variant":
                changed.Parameters.Remove("effserve.exit_threshold");
                changed.Parameters["effserve.variant"] = new InferParameter { StringParam = "fp32" };
                break;
            default:
                changed.Outputs.Add(new ModelInferRequest.Types.InferRequestedOutputTensor { Name = "logits" });
                break;
        }

        // Naming the only output is the same answer as naming none: a hit, not a miss.
        Assert.Equal(change == "outputs" ? "hit" : "miss", CacheOutcome(await InferAsync(server, changed)));
        Assert.Equal("hit", CacheOutcome(await InferAsync(server, baseline)));
    }

    [Fact]
    public async Task ModelInfer_AfterTtl_MissesInL1AndRedis()
    {
        await using var redis = await RedisServer.StartAsync();
        await using var server = await StartAsync(Settings(redis, ttlSeconds: 1));
        await using var other = await StartAsync(Settings(redis, ttlSeconds: 1));
        Assert.Equal("miss", CacheOutcome(await InferAsync(server, Request(5))));
        await Task.Delay(200, Ct); // the fill of Redis does not hold up the response
        Assert.Equal("hit", CacheOutcome(await InferAsync(other, Request(5)))); // through Redis
        await Task.Delay(TimeSpan.FromSeconds(1.2), Ct);
        Assert.Equal("miss", CacheOutcome(await InferAsync(server, Request(5))));
    }

    [Fact]
    public async Task ModelInfer_AccuracyFloor_ServesTheEntryOnlyWhenItsVariantMeetsIt()
    {
        await using var server = await StartAsync(Settings(null));

        // Early exit at threshold 0 exits at the first stage: 0.733 on the evaluation set (the profile).
        (string, InferParameter)[] shallow = [Text("effserve.variant", "early-exit"), Number("effserve.exit_threshold", 0)];
        Assert.Equal("miss", CacheOutcome(await InferAsync(server, Request(6, true, shallow))));
        Assert.Equal("hit", CacheOutcome(await InferAsync(server, Request(6, true, [.. shallow, Number("effserve.min_accuracy", 0.7)]))));
        try
        {
            var strict = await InferAsync(server, Request(6, true, [.. shallow, Number("effserve.min_accuracy", 0.9)]));
            Assert.NotEqual("hit", CacheOutcome(strict));
        }
        catch (RpcException e)
        {
            // The engine may also refuse a pinned variant that cannot meet the floor; either way no cached answer.
            Assert.NotEqual(StatusCode.OK, e.StatusCode);
        }
    }

    [Fact]
    public async Task ModelInfer_IdenticalConcurrentMisses_RunOnce()
    {
        await using var server = await StartAsync(Settings(null));
        var responses = await Task.WhenAll(Enumerable.Range(0, 16).Select(_ => InferAsync(server, Request(7))));
        var stats = await StatisticsAsync(server);
        Assert.Equal(1ul, stats.ExecutionCount);
        Assert.Single(responses, r => CacheOutcome(r) == "miss");
        Assert.All(responses, r => Assert.Equal(Logits(responses[0]), Logits(r)));
    }

    [Fact]
    public async Task ModelInfer_BypassAndRefresh_RunTheModel()
    {
        await using var server = await StartAsync(Settings(null));
        await InferAsync(server, Request(8));
        Assert.Equal("bypass", CacheOutcome(await InferAsync(server, Request(8, true, Text("effserve.cache", "bypass")))));
        Assert.Equal("miss", CacheOutcome(await InferAsync(server, Request(8, true, Text("effserve.cache", "refresh")))));
        Assert.Equal("hit", CacheOutcome(await InferAsync(server, Request(8))));
        Assert.Equal(3ul, (await StatisticsAsync(server)).ExecutionCount);
    }

    [Fact]
    public async Task ModelInfer_ModelNotOptedIn_Bypasses()
    {
        await using var server = await StartAsync(new Dictionary<string, string?>());
        Assert.Equal("bypass", CacheOutcome(await InferAsync(server, Request(9))));
        Assert.Equal("bypass", CacheOutcome(await InferAsync(server, Request(9))));
    }

    [Fact]
    public async Task ModelInfer_UnknownCacheMode_InvalidArgument()
    {
        await using var server = await StartAsync(Settings(null));
        var e = await FailsAsync(() => InferAsync(server, Request(10, true, Text("effserve.cache", "sometimes"))));
        Assert.Equal(StatusCode.InvalidArgument, e.StatusCode);
        Assert.Contains("effserve.cache is 'sometimes'; use 'use', 'bypass' or 'refresh'", e.Status.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ModelInfer_RedisKilledMidRun_InferenceContinuesAndL2ComesBack()
    {
        await using var redis = await RedisServer.StartAsync();
        await using var server = await StartAsync(Settings(redis));
        await using var other = await StartAsync(Settings(redis));
        Assert.Equal("miss", CacheOutcome(await InferAsync(server, Request(11))));

        await redis.KillAsync();
        for (var i = 0; i < 30; i++)
        {
            var response = await InferAsync(server, Request(100 + (i % 10)));
            Assert.Contains(CacheOutcome(response), new[] { "hit", "miss" });
        }

        Assert.Equal("hit", CacheOutcome(await InferAsync(server, Request(11)))); // served by the in-process level

        await redis.RestartAsync(); // empty: persistence is off
        var sample = 300;
        await UntilAsync(
            async () =>
            {
                sample++;
                await InferAsync(server, Request(sample));
                await Task.Delay(100, Ct);
                return CacheOutcome(await InferAsync(other, Request(sample))) == "hit";
            },
            "an entry written by one replica is found by the other through Redis again");
    }
}
