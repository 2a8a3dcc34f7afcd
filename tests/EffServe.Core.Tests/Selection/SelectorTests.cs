using EffServe.Core.Selection;
using EffServe.Core.Tests.Accounting;

namespace EffServe.Core.Tests.Selection;

/// <summary>Selection against a fake clock: budgets shrink as the clock moves, never by sleeping.</summary>
public sealed class SelectorTests
{
    // fp32: accurate and slow; early exit at three thresholds; int8: fast.
    private static IReadOnlyList<Candidate> Candidates(double ahead = 0) =>
    [
        new("fp32", null, 0.9725, 4.0, ahead, 1e-6, IsModelDefault: true, IsVariantDefault: true),
        new("early-exit", 1.0, 0.9725, 4.5, ahead, 1.1e-6, false, false),
        new("early-exit", 0.9, 0.9705, 2.0, ahead, 0.5e-6, false, true),
        new("early-exit", 0.5, 0.91, 1.0, ahead, 0.25e-6, false, false),
        new("int8", null, 0.972, 1.5, ahead, 0.4e-6, false, true),
    ];

    private static SelectionDecision Decide(string policy, double? budgetMs, double? floor = null, double? cap = null, WhenNothingFits whenNothingFits = WhenNothingFits.Shed, double ahead = 0) =>
        Selector.Decide(SelectionPolicies.BuiltIn.Get(policy), Candidates(ahead), new SelectionRequest(budgetMs, floor, cap), "int8", whenNothingFits);

    [Fact]
    public void SloAware_LooseBudget_PicksTheMostAccurate()
    {
        var decision = Decide("slo-aware", 100);

        Assert.Equal(SelectionVerdict.Serve, decision.Verdict);
        Assert.Equal("fp32", decision.Choice!.Variant);
    }

    [Fact]
    public void SloAware_BusyReplica_AccuracyTieGoesToTheCheapest()
    {
        // int8 is 0.05 points below fp32: a tie the evaluation set cannot tell apart.
        var decision = Selector.Decide(new SloAwarePolicy(), Candidates(), new SelectionRequest(100, null, null, Busy: true), "int8", WhenNothingFits.Shed);

        Assert.Equal("int8", decision.Choice!.Variant);
    }

    [Fact]
    public void SloAware_BusyReplica_NoTieWithinReach_StillTheMostAccurate()
    {
        // Only early exit at threshold 0.5 fits 1.2 ms: busy or not, it is what the budget allows.
        var decision = Selector.Decide(new SloAwarePolicy(), Candidates(), new SelectionRequest(1.2, null, null, Busy: true), "int8", WhenNothingFits.Shed);

        Assert.Equal(("early-exit", 0.5), (decision.Choice!.Variant, decision.Choice.Threshold));
    }

    [Fact]
    public void SloAware_Calibrated_ExcessAddedBeforeTheFit()
    {
        // fp32 alone takes 4 ms: it fits 5 ms as predicted, not once recent requests ran 1.5 ms over theirs.
        var calibrated = Candidates().Select(c => c with { ExcessMs = 1.5 }).ToList();

        var decision = Selector.Decide(new SloAwarePolicy(), calibrated, new SelectionRequest(5, null, null), "int8", WhenNothingFits.Shed);

        Assert.Equal("int8", decision.Choice!.Variant);
        Assert.Equal(3.0, decision.Choice.CompletionMs, 9);
    }

    [Fact]
    public void Decide_CalibratedNothingFits_MessageSaysWhy()
    {
        var calibrated = Candidates().Select(c => c with { ExcessMs = 4.0 }).ToList();

        var decision = Selector.Decide(new SloAwarePolicy(), calibrated, new SelectionRequest(2, null, null), "int8", WhenNothingFits.Shed);

        Assert.Equal(SelectionVerdict.ShedDeadline, decision.Verdict);
        Assert.Contains("plus 4 ms by which recent requests exceeded their predictions", decision.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void SloAware_NoBudget_ServesTheModelsDefault()
    {
        var decision = Selector.Decide(new SloAwarePolicy(), Candidates(), new SelectionRequest(null, null, null), "int8", WhenNothingFits.Shed);

        Assert.Equal("fp32", decision.Choice!.Variant);
    }

    [Fact]
    public void SloAware_NoBudgetDefaultBelowTheFloor_ServesTheMostAccurateAbove()
    {
        IReadOnlyList<Candidate> candidates = [.. Candidates().Select(c => c.Variant == "fp32" ? c with { Accuracy = 0.9 } : c)];

        var decision = Selector.Decide(new SloAwarePolicy(), candidates, new SelectionRequest(null, 0.95, null), "int8", WhenNothingFits.Shed);

        Assert.Equal("early-exit", decision.Choice!.Variant); // 0.9725 at threshold 1
        Assert.Equal(1.0, decision.Choice.Threshold);
    }

    [Fact]
    public void MostAccurate_EqualAccuracy_PrefersTheSoonerFinished()
    {
        IReadOnlyList<Candidate> candidates = [.. Candidates().Select(c => c.Variant == "fp32" ? c with { RunMs = 9 } : c)];

        var decision = Selector.Decide(new MostAccuratePolicy(), candidates, new SelectionRequest(null, null, null), "int8", WhenNothingFits.Shed);

        Assert.Equal("early-exit", decision.Choice!.Variant);
    }

    [Theory]
    [InlineData(0.975, "fp32")] // within half a point of the default's 0.9725: the default stays
    [InlineData(0.99, "int8")]
    public void SloAware_DefaultKeptUnlessClearlyLessAccurate(double int8Accuracy, string expected)
    {
        IReadOnlyList<Candidate> candidates = [.. Candidates().Select(c => c.Variant == "int8" ? c with { Accuracy = int8Accuracy } : c)];

        var decision = Selector.Decide(new SloAwarePolicy(), candidates, new SelectionRequest(100, null, null), "int8", WhenNothingFits.Shed);

        Assert.Equal(expected, decision.Choice!.Variant);
    }

    [Fact]
    public void SloAware_BudgetShrinkingOnTheClock_MovesToFasterChoices()
    {
        var clock = new ManualClock();
        var budget = RequestBudget.Tightest(clock, clock.GetTimestamp(), sloMs: 5, grpcRemaining: null, timeoutUs: null);
        var policy = SelectionPolicies.BuiltIn.Get("slo-aware");
        string Pick() => Selector.Decide(policy, Candidates(), new SelectionRequest(budget.RemainingMs(clock, clock.GetTimestamp()), null, null), "int8", WhenNothingFits.Shed).Choice?.Variant ?? "shed";

        Assert.Equal("fp32", Pick());
        clock.Advance(TimeSpan.FromMilliseconds(2));
        Assert.Equal("int8", Pick()); // 3 ms left: int8 (0.972, 1.5 ms) beats early exit at 0.9 (0.9705, 2 ms)
        clock.Advance(TimeSpan.FromMilliseconds(1.8));
        Assert.Equal("early-exit", Pick()); // 1.2 ms left: only the 0.5 threshold fits
        clock.Advance(TimeSpan.FromMilliseconds(1));
        Assert.Equal("shed", Pick());
    }

    [Fact]
    public void SloAware_WorkQueuedAhead_CountsAgainstTheBudget()
    {
        var decision = Decide("slo-aware", 6, ahead: 3);

        Assert.Equal("int8", decision.Choice!.Variant); // fp32 would finish at 7 ms
        Assert.Equal(4.5, decision.Choice.CompletionMs);
    }

    [Fact]
    public void SloAware_TightBudget_PicksTheMostAccurateThresholdThatFits()
    {
        var decision = Decide("slo-aware", 1.2);

        Assert.Equal("early-exit", decision.Choice!.Variant);
        Assert.Equal(0.5, decision.Choice.Threshold);
    }

    [Fact]
    public void Floor_ExcludesLessAccurateChoices()
    {
        var decision = Decide("slo-aware", 1.2, floor: 0.95, whenNothingFits: WhenNothingFits.Fastest);

        Assert.Equal(SelectionVerdict.BestEffort, decision.Verdict);
        Assert.Equal("int8", decision.Choice!.Variant); // the fastest within the floor, late
    }

    [Fact]
    public void Cap_ExcludesCostlierChoices()
    {
        var decision = Decide("slo-aware", 100, cap: 0.6e-6);

        Assert.Equal("int8", decision.Choice!.Variant);
    }

    [Fact]
    public void FloorAboveEveryVariant_IsUnsatisfiableAndSaysWhy()
    {
        var decision = Decide("slo-aware", 100, floor: 0.99);

        Assert.Equal(SelectionVerdict.Unsatisfiable, decision.Verdict);
        Assert.Null(decision.Choice);
        Assert.Contains("accuracy floor 0.99 is above the most accurate variant's 0.9725", decision.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void CapBelowEveryVariant_IsUnsatisfiableAndSaysWhy()
    {
        var decision = Decide("slo-aware", 100, cap: 1e-9);

        Assert.Equal(SelectionVerdict.Unsatisfiable, decision.Verdict);
        Assert.Contains("cost cap", decision.Reason, StringComparison.Ordinal);
        Assert.Contains("cheapest variant's predicted 2.5E-07 USD", decision.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void NothingFits_Shed_RefusesWithTheBudgetAndTheFastestPrediction()
    {
        var decision = Decide("slo-aware", 2, ahead: 1.5);

        Assert.Equal(SelectionVerdict.ShedDeadline, decision.Verdict);
        Assert.Null(decision.Choice);
        Assert.Contains("budget of 2 ms", decision.Reason, StringComparison.Ordinal);
        Assert.Contains("variant 'early-exit' at exit threshold 0.5", decision.Reason, StringComparison.Ordinal);
        Assert.Contains("1.5 ms of work queued ahead", decision.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void NothingFits_Fastest_ServesTheFastestLate()
    {
        var decision = Decide("slo-aware", 0.5, whenNothingFits: WhenNothingFits.Fastest);

        Assert.Equal(SelectionVerdict.BestEffort, decision.Verdict);
        Assert.Equal(0.5, decision.Choice!.Threshold);
    }

    [Theory]
    [InlineData("fixed", 0.5, "int8", null)]
    [InlineData("fastest", 100.0, "early-exit", 0.5)]
    [InlineData("most-accurate", 0.5, "fp32", null)]
    public void OtherPolicies_IgnoreTheBudget(string policy, double budget, string variant, double? threshold)
    {
        var decision = Decide(policy, budget);

        Assert.Equal(SelectionVerdict.Serve, decision.Verdict);
        Assert.Equal(variant, decision.Choice!.Variant);
        Assert.Equal(threshold, decision.Choice.Threshold);
    }

    [Fact]
    public void Fixed_EarlyExit_ServesTheVariantsOwnThreshold()
    {
        var decision = Selector.Decide(new FixedPolicy(), Candidates(), new SelectionRequest(null, null, null), "early-exit", WhenNothingFits.Shed);

        Assert.Equal(0.9, decision.Choice!.Threshold);
    }

    [Fact]
    public void Fixed_VariantBelowTheFloor_IsUnsatisfiable()
    {
        var decision = Decide("fixed", 100, floor: 0.9725);

        Assert.Equal(SelectionVerdict.Unsatisfiable, decision.Verdict);
        Assert.Contains("fixed variant 'int8'", decision.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Unprofiled_DefaultVariantLeads()
    {
        IReadOnlyList<Candidate> unprofiled =
        [
            new("int8", null, null, null, 0, null, false, true),
            new("fp32", null, null, null, 0, null, true, true),
        ];

        var decision = Selector.Decide(new SloAwarePolicy(), unprofiled, new SelectionRequest(10, null, null), "fp32", WhenNothingFits.Shed);

        Assert.Equal("fp32", decision.Choice!.Variant);
    }

    [Fact]
    public void Policies_AreRegisteredByName()
    {
        Assert.Equal(["fastest", "fixed", "most-accurate", "slo-aware"], SelectionPolicies.BuiltIn.Names);
        Assert.False(SelectionPolicies.BuiltIn.TryGet("random", out _));
        var e = Assert.Throws<KeyNotFoundException>(() => SelectionPolicies.BuiltIn.Get("random"));
        Assert.Contains("policies: fastest, fixed, most-accurate, slo-aware", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Budget_TightestLimitWins()
    {
        var clock = new ManualClock();
        var now = clock.GetTimestamp();

        var budget = RequestBudget.Tightest(clock, now, sloMs: 50, grpcRemaining: TimeSpan.FromMilliseconds(20), timeoutUs: 30_000);

        Assert.Equal(BudgetSource.GrpcDeadline, budget.Source);
        Assert.Equal(20, budget.RemainingMs(clock, now)!.Value, 6);
        Assert.Equal(BudgetSource.Timeout, RequestBudget.Tightest(clock, now, 50, null, 30_000).Source);
        Assert.Equal(BudgetSource.Slo, RequestBudget.Tightest(clock, now, 5, null, 30_000).Source);
        Assert.False(RequestBudget.Tightest(clock, now, null, null, null).HasDeadline);
        Assert.False(RequestBudget.Tightest(clock, now, null, TimeSpan.MaxValue, null).HasDeadline);
    }
}
