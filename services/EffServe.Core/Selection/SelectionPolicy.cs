namespace EffServe.Core.Selection;

/// <summary>One way to serve a request: a variant and, for early exit, a threshold, with what it is predicted to deliver.</summary>
/// <param name="Variant">The variant's name.</param>
/// <param name="Threshold">The early-exit threshold; null for other kinds.</param>
/// <param name="Accuracy">Accuracy on the model's evaluation set (the threshold's for early exit); null when not profiled.</param>
/// <param name="RunMs">Predicted run time of the request alone; null while the latency model knows nothing.</param>
/// <param name="AheadMs">Predicted wait for the work queued and running ahead of the request.</param>
/// <param name="CostUsd">Predicted cost of the run (device time × price); null when the run time is unknown.</param>
/// <param name="IsModelDefault">The model's default variant at its own threshold.</param>
/// <param name="IsVariantDefault">The variant at its own threshold (always true for kinds without one).</param>
/// <param name="WorkMs">The run's cost on an unloaded machine by the profile (null without one): what ties are broken on, since live predictions of variants that ran at different times are not comparable.</param>
/// <param name="ExcessMs">How much longer than predicted this replica's recent requests took (<see cref="PredictionCalibration"/>); 0 when predictions are taken as they are.</param>
public sealed record Candidate(
    string Variant,
    double? Threshold,
    double? Accuracy,
    double? RunMs,
    double AheadMs,
    double? CostUsd,
    bool IsModelDefault,
    bool IsVariantDefault,
    double? WorkMs = null,
    double ExcessMs = 0)
{
    /// <summary>Predicted time from admission to the end of the run, before calibration.</summary>
    public double RawCompletionMs => AheadMs + (RunMs ?? 0);

    /// <summary>Predicted time from now until the request's answer is computed.</summary>
    public double CompletionMs => RawCompletionMs + ExcessMs;
}

/// <summary>What a policy chooses among.</summary>
/// <param name="Candidates">The candidates within the request's accuracy floor and cost cap (never empty).</param>
/// <param name="BudgetMs">Milliseconds left of the request's budget; null when it has none.</param>
/// <param name="FixedVariant">The variant the <c>fixed</c> policy serves.</param>
/// <param name="Busy">The replica's cores are busy enough that capacity matters more than an accuracy difference the evaluation set cannot tell apart.</param>
public sealed record SelectionContext(IReadOnlyList<Candidate> Candidates, double? BudgetMs, string FixedVariant, bool Busy = false);

/// <summary>
/// A named way to choose the variant that serves a request (in the shape of YARP's
/// load-balancing policies: each has a name, all are registered, configuration picks one).
/// </summary>
public interface ISelectionPolicy
{
    /// <summary>The name configuration uses (EffServe:Selection:Policy).</summary>
    string Name { get; }

    /// <summary>The candidate to serve, or null when none fits the budget.</summary>
    Candidate? Choose(SelectionContext context);
}

/// <summary>Orders of candidates every policy shares.</summary>
public static class CandidateOrder
{
    /// <summary>
    /// Most accurate first. An unprofiled accuracy counts below every profiled one, except that the
    /// model's default variant leads its equals; among equals, the sooner finished first.
    /// </summary>
    public static IEnumerable<Candidate> MostAccurateFirst(IEnumerable<Candidate> candidates) =>
        candidates
            .OrderByDescending(c => c.Accuracy ?? -1)
            .ThenByDescending(c => c.Accuracy is null && c.IsModelDefault)
            .ThenBy(c => c.CompletionMs)
            .ThenByDescending(c => c.IsModelDefault);

    /// <summary>The sooner finished first; among equals the more accurate.</summary>
    public static IEnumerable<Candidate> FastestFirst(IEnumerable<Candidate> candidates) =>
        candidates
            .OrderBy(c => c.CompletionMs)
            .ThenByDescending(c => c.Accuracy ?? -1)
            .ThenByDescending(c => c.IsModelDefault);
}

/// <summary>
/// <c>slo-aware</c>: the most accurate candidate whose predicted completion (work ahead plus its
/// run) fits the budget left. Accuracies within <see cref="AccuracyTolerance"/> of the best that
/// fits count as equal (differences smaller than an evaluation set can tell apart): among them the
/// model's default variant is kept while the replica is not <see cref="SelectionContext.Busy"/>, and
/// the cheapest (shortest run by the profile) is taken when it is, since a busy replica's capacity is
/// what every later request's budget depends on. Without a budget: the default (the most accurate
/// when the floor or cap excludes it).
/// </summary>
public sealed class SloAwarePolicy(double accuracyTolerance = SloAwarePolicy.DefaultAccuracyTolerance) : ISelectionPolicy
{
    public const string PolicyName = "slo-aware";

    /// <summary>Half a point of accuracy.</summary>
    public const double DefaultAccuracyTolerance = 0.005;

    public string Name => PolicyName;

    /// <summary>How much less accurate than the best fitting candidate the default variant may be and still be kept.</summary>
    public double AccuracyTolerance { get; } = accuracyTolerance;

    public Candidate? Choose(SelectionContext context)
    {
        var fitting = CandidateOrder.MostAccurateFirst(context.Candidates)
            .Where(c => context.BudgetMs is not { } budget || c.CompletionMs <= budget)
            .ToList();
        if (fitting.Count == 0)
        {
            return null;
        }

        var best = fitting[0];
        if (context.Busy && context.BudgetMs is not null && best.Accuracy is { } top)
        {
            return fitting
                .Where(c => c.Accuracy is { } a && top - a <= AccuracyTolerance)
                .OrderBy(c => c.WorkMs ?? c.RunMs ?? double.MaxValue)
                .ThenByDescending(c => c.Accuracy)
                .First();
        }

        var preferred = fitting.FirstOrDefault(c => c.IsModelDefault);
        var close = preferred is not null && (context.BudgetMs is null || best.Accuracy is null || preferred.Accuracy is not { } own || best.Accuracy.Value - own <= AccuracyTolerance);
        return close ? preferred : best;
    }
}

/// <summary><c>fixed</c>: always the configured variant at its own threshold, whatever the budget.</summary>
public sealed class FixedPolicy : ISelectionPolicy
{
    public const string PolicyName = "fixed";

    public string Name => PolicyName;

    public Candidate? Choose(SelectionContext context) =>
        context.Candidates.FirstOrDefault(c => c.Variant == context.FixedVariant && c.IsVariantDefault)
        ?? context.Candidates.FirstOrDefault(c => c.Variant == context.FixedVariant);
}

/// <summary><c>fastest</c>: the candidate predicted to finish first, whatever its accuracy.</summary>
public sealed class FastestPolicy : ISelectionPolicy
{
    public const string PolicyName = "fastest";

    public string Name => PolicyName;

    public Candidate? Choose(SelectionContext context) => CandidateOrder.FastestFirst(context.Candidates).First();
}

/// <summary><c>most-accurate</c>: the most accurate candidate, whatever the budget.</summary>
public sealed class MostAccuratePolicy : ISelectionPolicy
{
    public const string PolicyName = "most-accurate";

    public string Name => PolicyName;

    public Candidate? Choose(SelectionContext context) => CandidateOrder.MostAccurateFirst(context.Candidates).First();
}
