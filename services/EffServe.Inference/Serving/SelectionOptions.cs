using System.Globalization;
using EffServe.Core.Selection;

namespace EffServe.Inference.Serving;

/// <summary>Settings of selection and batching that a model may override (EffServe:Selection:Models:&lt;model&gt;).</summary>
public class ModelSelectionOptions
{
    /// <summary><c>slo-aware</c>, <c>fixed</c>, <c>fastest</c> or <c>most-accurate</c>.</summary>
    public string? Policy { get; set; }

    /// <summary>The variant <c>fixed</c> serves; empty: the manifest's default variant.</summary>
    public string? Variant { get; set; }

    /// <summary><c>shed</c> or <c>fastest</c>: what happens to a request whose budget nothing can meet.</summary>
    public string? WhenNothingFits { get; set; }

    /// <summary>Budget in milliseconds of a request that brings none (no effserve.slo_ms, deadline or timeout); 0: none.</summary>
    public double? DefaultSloMs { get; set; }

    /// <summary>Accuracy floor of a request that sets none; 0: none.</summary>
    public double? DefaultMinAccuracy { get; set; }

    /// <summary>Most samples in one batch (also bounded by the model's max_batch_size); 1 turns batching off.</summary>
    public int? MaxBatchSize { get; set; }
}

/// <summary>
/// Configuration section EffServe:Selection: how a variant is chosen per request, how requests are
/// batched, and how much may wait. Every setting but the queue bounds may be overridden per model
/// under <c>Models:&lt;model&gt;</c>.
/// </summary>
public sealed class SelectionOptions : ModelSelectionOptions
{
    public const string SectionName = "EffServe:Selection";

    public SelectionOptions()
    {
        Policy = SloAwarePolicy.PolicyName;
        WhenNothingFits = "shed";
        MaxBatchSize = 32;
    }

    /// <summary>Online requests allowed to wait at once (all models); beyond, RESOURCE_EXHAUSTED.</summary>
    public int MaxQueuedRequests { get; set; } = 256;

    /// <summary>Background requests (batch jobs) allowed to wait at once.</summary>
    public int MaxQueuedBackgroundRequests { get; set; } = 64;

    /// <summary>The priority level of requests with priority 0 (the default); 1 is the highest.</summary>
    public int DefaultPriority { get; set; } = 1;

    /// <summary>Least throughput gain (0.1 = 10 %) the profile must show before requests are batched.</summary>
    public double MinBatchingGain { get; set; } = 0.1;

    /// <summary>
    /// Add to predictions what recent requests took beyond theirs, and break accuracy ties towards the
    /// cheapest variant when the cores are busy (docs/slo.md, "Calibration"); off, predictions are
    /// the latency model's alone and ties keep the default variant.
    /// </summary>
    public bool Calibrate { get; set; } = true;

    /// <summary>
    /// Share of the machine's cores busy (0–1) from which the replica counts as busy: slo-aware then
    /// breaks accuracy ties towards the cheapest variant. Needs <see cref="Calibrate"/>.
    /// </summary>
    public double BusyUtilisation { get; set; } = 0.5;

    /// <summary>Per-model overrides, by model name.</summary>
    public Dictionary<string, ModelSelectionOptions> Models { get; set; } = new(StringComparer.Ordinal);

    /// <summary>The settings of one model: its overrides over the service's.</summary>
    public ModelSelection For(string model)
    {
        Models.TryGetValue(model, out var own);
        return new ModelSelection(
            own?.Policy ?? Policy!,
            NonEmpty(own?.Variant) ?? NonEmpty(Variant),
            ParseWhenNothingFits(own?.WhenNothingFits ?? WhenNothingFits) ?? Core.Selection.WhenNothingFits.Shed,
            Positive(own?.DefaultSloMs ?? DefaultSloMs),
            Positive(own?.DefaultMinAccuracy ?? DefaultMinAccuracy),
            Math.Max(1, own?.MaxBatchSize ?? MaxBatchSize ?? 1));
    }

    /// <summary>Every problem, each with its configuration path.</summary>
    public IEnumerable<string> Validate()
    {
        const string P = SectionName;
        foreach (var problem in ValidateModel(P, this))
        {
            yield return problem;
        }

        if (MaxQueuedRequests < 1)
        {
            yield return $"{P}:MaxQueuedRequests is {MaxQueuedRequests}; at least 1 request must be able to wait.";
        }

        if (MaxQueuedBackgroundRequests < 1)
        {
            yield return $"{P}:MaxQueuedBackgroundRequests is {MaxQueuedBackgroundRequests}; use at least 1.";
        }

        if (DefaultPriority < 1)
        {
            yield return $"{P}:DefaultPriority is {DefaultPriority}; priority levels start at 1 (the highest).";
        }

        if (!double.IsFinite(BusyUtilisation) || BusyUtilisation is < 0 or > 1)
        {
            yield return $"{P}:BusyUtilisation is {BusyUtilisation.ToString(CultureInfo.InvariantCulture)}; use a share of the cores between 0 and 1 (1 never counts the replica busy).";
        }

        if (!double.IsFinite(MinBatchingGain) || MinBatchingGain < 0)
        {
            yield return $"{P}:MinBatchingGain is {MinBatchingGain.ToString(CultureInfo.InvariantCulture)}; use 0 or more (0.1 = 10 % more samples per second).";
        }

        foreach (var (model, options) in Models)
        {
            foreach (var problem in ValidateModel($"{P}:Models:{model}", options))
            {
                yield return problem;
            }
        }
    }

    private static IEnumerable<string> ValidateModel(string path, ModelSelectionOptions o)
    {
        if (o.Policy is { } policy && !SelectionPolicies.BuiltIn.TryGet(policy, out _))
        {
            yield return $"{path}:Policy is '{policy}'; use one of {string.Join(", ", SelectionPolicies.BuiltIn.Names)}.";
        }

        if (o.WhenNothingFits is { } when && ParseWhenNothingFits(when) is null)
        {
            yield return $"{path}:WhenNothingFits is '{when}'; use 'shed' or 'fastest'.";
        }

        if (o.DefaultSloMs is { } slo && (!double.IsFinite(slo) || slo < 0))
        {
            yield return $"{path}:DefaultSloMs is {slo.ToString(CultureInfo.InvariantCulture)}; use 0 (none) or a positive number of milliseconds.";
        }

        if (o.DefaultMinAccuracy is { } floor && floor is < 0 or > 1)
        {
            yield return $"{path}:DefaultMinAccuracy is {floor.ToString(CultureInfo.InvariantCulture)}; an accuracy floor lies in [0, 1].";
        }

        if (o.MaxBatchSize is < 1)
        {
            yield return $"{path}:MaxBatchSize is {o.MaxBatchSize}; use 1 (no batching) or more.";
        }
    }

    private static WhenNothingFits? ParseWhenNothingFits(string? text) => text switch
    {
        "shed" => Core.Selection.WhenNothingFits.Shed,
        "fastest" => Core.Selection.WhenNothingFits.Fastest,
        _ => null,
    };

    private static string? NonEmpty(string? text) => string.IsNullOrWhiteSpace(text) ? null : text;

    private static double? Positive(double? value) => value is > 0 ? value : null;
}

/// <summary>One model's selection and batching settings, resolved (Variant null: the model's default).</summary>
public sealed record ModelSelection(string Policy, string? Variant, WhenNothingFits WhenNothingFits, double? DefaultSloMs, double? DefaultMinAccuracy, int MaxBatchSize);
