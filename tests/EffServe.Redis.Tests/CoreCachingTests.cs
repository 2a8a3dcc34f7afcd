using EffServe.Core.Caching;
using EffServe.Core.Jobs;
using EffServe.Core.Tensors;

namespace EffServe.Redis.Tests;

public sealed class CacheKeyTests
{
    private static readonly NamedTensor s_image = NamedTensor.FromBytes("image", DataType.Fp32, [1, 1, 2, 2], new byte[16]);
    private static readonly NamedTensor s_mask = NamedTensor.FromBytes("mask", DataType.UInt8, [1, 4], new byte[] { 1, 0, 1, 0 });

    private static CacheKeyParts Base() => new("digits", "1", "abc", [s_image, s_mask], ["logits"], null, null);

    public static TheoryData<string> Changes() => ["model", "version", "revision", "input name", "datatype", "shape", "bytes", "outputs", "output order", "variant", "threshold"];

    [Theory]
    [MemberData(nameof(Changes))]
    public void Compute_AnyOneComponentChanged_GivesAnotherKey(string change)
    {
        var b = Base();
        var changed = change switch
        {
            "model" => b with { Model = "digits2" },
            "version" => b with { Version = "2" },
            "revision" => b with { Revision = "abd" },
            "input name" => b with { Inputs = [NamedTensor.FromBytes("picture", DataType.Fp32, [1, 1, 2, 2], new byte[16]), s_mask] },
            "datatype" => b with { Inputs = [NamedTensor.FromBytes("image", DataType.Int32, [1, 1, 2, 2], new byte[16]), s_mask] },
            "shape" => b with { Inputs = [NamedTensor.FromBytes("image", DataType.Fp32, [1, 1, 4, 1], new byte[16]), s_mask] },
            "bytes" => b with { Inputs = [NamedTensor.FromBytes("image", DataType.Fp32, [1, 1, 2, 2], new byte[] { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 128, 63 }), s_mask] },
            "outputs" => b with { Outputs = ["logits", "probabilities"] },
            "output order" => Base() with { Outputs = ["a", "b"] },
            "variant" => b with { Variant = "int8" },
            _ => b with { ExitThreshold = 0.9 },
        };
        var reference = change == "output order" ? CacheKey.Compute(Base() with { Outputs = ["b", "a"] }) : CacheKey.Compute(b);
        Assert.NotEqual(reference, CacheKey.Compute(changed));
    }

    [Fact]
    public void Compute_SameParts_SameKeyWhateverTheInputOrder()
    {
        var reordered = Base() with { Inputs = [s_mask, s_image] };
        Assert.Equal(CacheKey.Compute(Base()), CacheKey.Compute(reordered));
        Assert.Equal(64, CacheKey.Compute(Base()).Length);
    }

    [Fact]
    public void Compute_ThresholdZeroAndNoThreshold_Differ() =>
        Assert.NotEqual(CacheKey.Compute(Base()), CacheKey.Compute(Base() with { ExitThreshold = 0 }));
}

public sealed class CircuitBreakerTests
{
    [Fact]
    public void Failure_ThresholdReached_OpensThenProbesThenCloses()
    {
        var clock = new ClockForTests();
        var breaker = new CircuitBreaker(3, TimeSpan.FromSeconds(2), clock);
        var changes = new List<(BreakerState, BreakerState)>();
        breaker.StateChanged += (from, to) => changes.Add((from, to));
        for (var i = 0; i < 3; i++)
        {
            Assert.True(breaker.TryEnter());
            breaker.Failure();
        }

        Assert.Equal(BreakerState.Open, breaker.State);
        Assert.False(breaker.TryEnter());
        clock.Advance(TimeSpan.FromSeconds(2));
        Assert.True(breaker.TryEnter());
        Assert.False(breaker.TryEnter()); // one probe at a time
        breaker.Success();
        Assert.Equal(BreakerState.Closed, breaker.State);
        Assert.Equal([(BreakerState.Closed, BreakerState.Open), (BreakerState.Open, BreakerState.HalfOpen), (BreakerState.HalfOpen, BreakerState.Closed)], changes);
    }

    [Fact]
    public void Failure_ProbeFails_OpensAgain()
    {
        var clock = new ClockForTests();
        var breaker = new CircuitBreaker(1, TimeSpan.FromSeconds(1), clock);
        breaker.Failure();
        clock.Advance(TimeSpan.FromSeconds(1));
        Assert.True(breaker.TryEnter());
        breaker.Failure();
        Assert.Equal(BreakerState.Open, breaker.State);
        Assert.False(breaker.TryEnter());
    }

    [Fact]
    public void Success_BetweenFailures_ResetsTheCount()
    {
        var breaker = new CircuitBreaker(2, TimeSpan.FromSeconds(1), new ClockForTests());
        breaker.Failure();
        breaker.Success();
        breaker.Failure();
        Assert.Equal(BreakerState.Closed, breaker.State);
    }
}

public sealed class ByteBoundedCacheTests
{
    [Fact]
    public void Set_PastTheBound_EvictsLeastRecentlyUsed()
    {
        var cache = new ByteBoundedCache<string>(100, new ClockForTests());
        cache.Set("a", "A", 40, TimeSpan.FromMinutes(1));
        cache.Set("b", "B", 40, TimeSpan.FromMinutes(1));
        Assert.True(cache.TryGet("a", out _)); // a is now the most recent
        cache.Set("c", "C", 40, TimeSpan.FromMinutes(1));
        Assert.True(cache.TryGet("a", out _));
        Assert.False(cache.TryGet("b", out _));
        Assert.True(cache.TryGet("c", out _));
        Assert.Equal(80, cache.Bytes);
    }

    [Fact]
    public void TryGet_AfterTtl_Misses()
    {
        var clock = new ClockForTests();
        var cache = new ByteBoundedCache<string>(100, clock);
        cache.Set("a", "A", 10, TimeSpan.FromSeconds(5));
        clock.Advance(TimeSpan.FromSeconds(5));
        Assert.False(cache.TryGet("a", out _));
        Assert.Equal(0, cache.Bytes);
    }

    [Fact]
    public void Set_LargerThanTheBound_IsNotKept()
    {
        var cache = new ByteBoundedCache<string>(10, new ClockForTests());
        cache.Set("a", "A", 11, TimeSpan.FromMinutes(1));
        Assert.Equal(0, cache.Count);
    }
}

public sealed class SingleFlightTests
{
    [Fact]
    public async Task RunAsync_ConcurrentSameKey_RunsOnce()
    {
        var flight = new SingleFlight<int>();
        var gate = new TaskCompletionSource();
        var runs = 0;
        async Task<int> Work(CancellationToken ct)
        {
            Interlocked.Increment(ref runs);
            await gate.Task;
            return 42;
        }

        var calls = Enumerable.Range(0, 8).Select(_ => flight.RunAsync("k", Work, TestContext.Current.CancellationToken)).ToList();
        gate.SetResult();
        var results = await Task.WhenAll(calls);
        Assert.Equal(1, runs);
        Assert.All(results, r => Assert.Equal(42, r.Value));
        Assert.Equal(7, results.Count(r => r.Shared));
    }

    [Fact]
    public async Task RunAsync_LeaderFails_FollowersRunTheirOwn()
    {
        var flight = new SingleFlight<int>();
        var gate = new TaskCompletionSource();
        var runs = 0;
        async Task<int> Work(CancellationToken ct)
        {
            if (Interlocked.Increment(ref runs) == 1)
            {
                await gate.Task;
                throw new InvalidOperationException("leader only");
            }

            return 7;
        }

        var leader = flight.RunAsync("k", Work, TestContext.Current.CancellationToken);
        var follower = flight.RunAsync("k", Work, TestContext.Current.CancellationToken);
        gate.SetResult();
        await Assert.ThrowsAsync<InvalidOperationException>(() => leader);
        Assert.Equal(7, (await follower).Value);
    }
}

public sealed class JobIdTests
{
    [Fact]
    public void New_CarriesTheModelAndParsesBack()
    {
        var id = JobIds.New("my.model");
        Assert.StartsWith("my.model.", id, StringComparison.Ordinal);
        Assert.True(JobIds.TryParse(id, out var model, out _));
        Assert.Equal("my.model", model);
        Assert.NotEqual(id, JobIds.New("my.model"));
    }

    [Theory]
    [InlineData("")]
    [InlineData("digits")]
    [InlineData("digits.short")]
    [InlineData(".aaaaaaaaaaaaaaaaaaaaaaaaaa")]
    [InlineData("digits.AAAAAAAAAAAAAAAAAAAAAAAAAA")]
    public void TryParse_NotAnId_SaysWhatAnIdLooksLike(string id)
    {
        Assert.False(JobIds.TryParse(id, out _, out var problem));
        Assert.Contains("job id", problem, StringComparison.Ordinal);
    }
}
