using System.Globalization;

namespace EffServe.Core.Selection;

/// <summary>What to do with a request when no candidate fits its budget.</summary>
public enum WhenNothingFits
{
    /// <summary>Refuse it at once (DEADLINE_EXCEEDED), before it takes any capacity.</summary>
    Shed,

    /// <summary>Serve it with the candidate predicted to finish first, late but answered.</summary>
    Fastest,
}

public enum SelectionVerdict
{
    /// <summary>The choice fits the budget (or the request has none, or the policy ignores it).</summary>
    Serve,

    /// <summary>Nothing fitted; the fastest candidate serves it anyway.</summary>
    BestEffort,

    /// <summary>Nothing fits the budget: refuse with DEADLINE_EXCEEDED.</summary>
    ShedDeadline,

    /// <summary>No candidate meets the accuracy floor or the cost cap: the request cannot be served as asked.</summary>
    Unsatisfiable,
}

/// <param name="Choice">The candidate to serve; null when shed or unsatisfiable.</param>
/// <param name="Verdict">What happens to the request.</param>
/// <param name="Reason">Why, in words a caller can act on; empty when served as asked.</param>
public sealed record SelectionDecision(Candidate? Choice, SelectionVerdict Verdict, string Reason);

/// <summary>What a request asks of selection.</summary>
/// <param name="BudgetMs">Milliseconds left of its budget; null when it has none.</param>
/// <param name="MinAccuracy">Its accuracy floor.</param>
/// <param name="MaxCostUsd">Its cost cap.</param>
/// <param name="Busy">The replica is busy: accuracy ties go to the cheapest candidate (<see cref="SloAwarePolicy"/>).</param>
public readonly record struct SelectionRequest(double? BudgetMs, double? MinAccuracy, double? MaxCostUsd, bool Busy = false);

/// <summary>
/// Applies a request's accuracy floor and cost cap, asks the policy, and decides what happens when
/// the policy finds nothing that fits.
/// </summary>
public static class Selector
{
    public static SelectionDecision Decide(ISelectionPolicy policy, IReadOnlyList<Candidate> candidates, SelectionRequest request, string fixedVariant, WhenNothingFits whenNothingFits)
    {
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(candidates);
        if (candidates.Count == 0)
        {
            return new SelectionDecision(null, SelectionVerdict.Unsatisfiable, "no variant of the model can run on this replica");
        }

        var eligible = candidates.Where(c => MeetsFloor(c, request.MinAccuracy) && MeetsCap(c, request.MaxCostUsd)).ToList();
        if (eligible.Count == 0)
        {
            return new SelectionDecision(null, SelectionVerdict.Unsatisfiable, WhyNoneEligible(candidates, request));
        }

        var choice = policy.Choose(new SelectionContext(eligible, request.BudgetMs, fixedVariant, request.Busy));
        if (choice is not null)
        {
            return new SelectionDecision(choice, SelectionVerdict.Serve, "");
        }

        var fastest = CandidateOrder.FastestFirst(eligible).First();
        if (policy.Name == FixedPolicy.PolicyName && !eligible.Any(c => c.Variant == fixedVariant))
        {
            return new SelectionDecision(null, SelectionVerdict.Unsatisfiable, $"the fixed variant '{fixedVariant}' does not meet the request's accuracy floor or cost cap, or cannot run here");
        }

        var reason = string.Create(CultureInfo.InvariantCulture,
            $"the budget of {request.BudgetMs:0.###} ms left cannot be met: the fastest choice, variant '{fastest.Variant}'{ThresholdText(fastest)}, is predicted to take {fastest.RunMs ?? 0:0.###} ms after {fastest.AheadMs:0.###} ms of work queued ahead{CalibrationText(fastest)}");
        return whenNothingFits == WhenNothingFits.Fastest
            ? new SelectionDecision(fastest, SelectionVerdict.BestEffort, reason)
            : new SelectionDecision(null, SelectionVerdict.ShedDeadline, reason);
    }

    private static bool MeetsFloor(Candidate c, double? floor) => floor is not { } f || c.Accuracy >= f;

    private static bool MeetsCap(Candidate c, double? cap) => cap is not { } max || c.CostUsd is not { } cost || cost <= max;

    private static string WhyNoneEligible(IReadOnlyList<Candidate> candidates, SelectionRequest request)
    {
        var parts = new List<string>();
        if (request.MinAccuracy is { } floor)
        {
            var best = candidates.Max(c => c.Accuracy);
            parts.Add(best is { } b
                ? string.Create(CultureInfo.InvariantCulture, $"the accuracy floor {floor:0.####} is above the most accurate variant's {b:0.####}")
                : string.Create(CultureInfo.InvariantCulture, $"the accuracy floor {floor:0.####} cannot be checked: no variant has a profiled accuracy"));
        }

        if (request.MaxCostUsd is { } cap && candidates.Where(c => c.CostUsd is not null).Select(c => c.CostUsd!.Value).DefaultIfEmpty(double.NaN).Min() is var cheapest && !double.IsNaN(cheapest))
        {
            parts.Add(string.Create(CultureInfo.InvariantCulture, $"the cost cap {cap:G4} USD is below the cheapest variant's predicted {cheapest:G4} USD"));
        }

        if (parts.Count == 0)
        {
            parts.Add("no variant meets both the accuracy floor and the cost cap");
        }

        return string.Join("; ", parts);
    }

    private static string CalibrationText(Candidate c) =>
        c.ExcessMs <= 0 ? "" : string.Create(CultureInfo.InvariantCulture, $", plus {c.ExcessMs:0.###} ms by which recent requests exceeded their predictions");

    private static string ThresholdText(Candidate c) =>
        c.Threshold is { } t ? string.Create(CultureInfo.InvariantCulture, $" at exit threshold {t:0.###}") : "";
}

/// <summary>The policies by name, as configuration picks them.</summary>
public sealed class SelectionPolicies
{
    private readonly Dictionary<string, ISelectionPolicy> _byName;

    public SelectionPolicies(IEnumerable<ISelectionPolicy> policies)
    {
        _byName = policies.ToDictionary(p => p.Name, StringComparer.Ordinal);
    }

    /// <summary>The four built-in policies.</summary>
    public static SelectionPolicies BuiltIn { get; } = new([new SloAwarePolicy(), new FixedPolicy(), new FastestPolicy(), new MostAccuratePolicy()]);

    public IEnumerable<string> Names => _byName.Keys.Order(StringComparer.Ordinal);

    public bool TryGet(string name, out ISelectionPolicy policy) => _byName.TryGetValue(name, out policy!);

    public ISelectionPolicy Get(string name) =>
        _byName.TryGetValue(name, out var policy) ? policy : throw new KeyNotFoundException($"No selection policy '{name}'; policies: {string.Join(", ", Names)}.");
}
