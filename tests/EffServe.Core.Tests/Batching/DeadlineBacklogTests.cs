using EffServe.Core.Batching;
using EffServe.Core.Tests.Accounting;

namespace EffServe.Core.Tests.Batching;

public sealed class DeadlineBacklogTests
{
    private readonly ManualClock _clock = new();

    /// <summary>1 ms per sample; batches of up to 8 for "a", none for "solo".</summary>
    private sealed class Planner : IBatchPlanner
    {
        public double PredictMs(string batchKey, int samples) => samples;

        public int MaxSamples(string batchKey) => batchKey == "solo" ? 1 : 8;
    }

    private long In(double ms) => _clock.GetTimestamp() + (long)(ms * 1e6);

    private QueueEntry<string> Entry(string name, double deadlineMs, long rank = 1, string key = "a", int samples = 1, bool droppable = true, bool background = false) =>
        new(name, key, samples, rank, double.IsPositiveInfinity(deadlineMs) ? long.MaxValue : In(deadlineMs), droppable, background);

    private BatchPlan<string> Take(DeadlineBacklog<string> backlog) => backlog.TakeBatch(_clock.GetTimestamp(), _clock, new Planner());

    [Fact]
    public void TakeBatch_OrdersByPriorityThenDeadline()
    {
        var backlog = new DeadlineBacklog<string>(10, 10);
        backlog.TryEnqueue(Entry("late", 50, key: "solo"));
        backlog.TryEnqueue(Entry("low", 5, rank: 2, key: "solo"));
        backlog.TryEnqueue(Entry("soon", 10, key: "solo"));

        Assert.Equal(["soon", "late", "low"], [.. Enumerable.Range(0, 3).Select(_ => Take(backlog).Batch.Single().Value)]);
    }

    [Fact]
    public void TakeBatch_LargestBatchThatMeetsTheEarliestDeadline()
    {
        var backlog = new DeadlineBacklog<string>(10, 10);
        foreach (var i in Enumerable.Range(0, 6))
        {
            backlog.TryEnqueue(Entry($"r{i}", 4 + i));
        }

        // r0 is due in 4 ms at 1 ms per sample: a batch of 4 finishes just in time.
        var plan = Take(backlog);

        Assert.Equal(["r0", "r1", "r2", "r3"], plan.Batch.Select(e => e.Value));
        Assert.Empty(plan.Expired);
        Assert.Equal(2, backlog.Count);
    }

    [Fact]
    public void TakeBatch_StopsAtTheSizeLimitAndKeepsKeysApart()
    {
        var backlog = new DeadlineBacklog<string>(20, 10);
        foreach (var i in Enumerable.Range(0, 10))
        {
            backlog.TryEnqueue(Entry($"a{i}", double.PositiveInfinity));
        }

        backlog.TryEnqueue(Entry("b", double.PositiveInfinity, key: "b"));
        backlog.TryEnqueue(Entry("big", double.PositiveInfinity, samples: 5));

        var plan = Take(backlog);

        Assert.Equal(8, plan.Batch.Sum(e => e.Samples));
        Assert.All(plan.Batch, e => Assert.Equal("a", e.BatchKey));
    }

    [Fact]
    public void TakeBatch_DropsWhatCanNoLongerMakeItBeforeCompute()
    {
        var backlog = new DeadlineBacklog<string>(10, 10);
        backlog.TryEnqueue(Entry("doomed", 3));
        backlog.TryEnqueue(Entry("best-effort", 3, droppable: false));
        backlog.TryEnqueue(Entry("fine", 20));
        _clock.Advance(TimeSpan.FromMilliseconds(2.5));

        var plan = Take(backlog);

        Assert.Equal(["doomed"], plan.Expired.Select(e => e.Value));
        Assert.Equal(["best-effort", "fine"], plan.Batch.Select(e => e.Value));
    }

    [Fact]
    public void TryEnqueue_BoundsEachClassOnItsOwn()
    {
        var backlog = new DeadlineBacklog<string>(2, 1);

        Assert.True(backlog.TryEnqueue(Entry("1", 10)));
        Assert.True(backlog.TryEnqueue(Entry("2", 10)));
        Assert.False(backlog.TryEnqueue(Entry("3", 10)));
        Assert.True(backlog.TryEnqueue(Entry("bg1", double.PositiveInfinity, background: true)));
        Assert.False(backlog.TryEnqueue(Entry("bg2", double.PositiveInfinity, background: true)));
        Assert.Equal(2, backlog.Count);
        Assert.Equal(1, backlog.BackgroundCount);
    }

    [Fact]
    public void Remove_FreesTheSlotAtOnce()
    {
        var backlog = new DeadlineBacklog<string>(1, 1);
        var first = Entry("1", 10);
        backlog.TryEnqueue(first);

        Assert.True(backlog.Remove(first));
        Assert.False(backlog.Remove(first));
        Assert.True(backlog.TryEnqueue(Entry("2", 10)));
    }

    [Fact]
    public void Background_RunsOnlyWhenNoForegroundWaits()
    {
        var backlog = new DeadlineBacklog<string>(10, 10);
        backlog.TryEnqueue(Entry("job", double.PositiveInfinity, rank: 0, key: "solo", droppable: false, background: true));
        backlog.TryEnqueue(Entry("online", 1000, rank: 5, key: "solo"));

        Assert.Equal("online", Take(backlog).Batch.Single().Value);
        Assert.Equal("job", Take(backlog).Batch.Single().Value);
        Assert.True(backlog.IsEmpty);
        Assert.Empty(Take(backlog).Batch);
    }

    [Fact]
    public void WorkAhead_CountsOnlyWhatRunsBefore()
    {
        var backlog = new DeadlineBacklog<string>(10, 10);
        backlog.TryEnqueue(Entry("high", 100, rank: 1));
        backlog.TryEnqueue(Entry("soon", 5, rank: 2));
        backlog.TryEnqueue(Entry("late", 50, rank: 2));
        backlog.TryEnqueue(Entry("low", 1, rank: 3));
        backlog.TryEnqueue(Entry("job", double.PositiveInfinity, rank: 1, background: true));

        var ahead = backlog.WorkAhead(2, In(10), e => e.Value.Length);

        Assert.Equal("high".Length + "soon".Length, ahead);
    }
}
