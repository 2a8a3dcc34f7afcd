using System.Globalization;
using System.Text;

namespace EffServe.LoadGen;

/// <summary>One target of the SLO benchmark: what was measured against what was asked.</summary>
public sealed record TargetCheck(string Target, string Measured, bool Met);

/// <summary>
/// The SLO benchmark's targets (BENCHMARKING.md, T3): the adaptive policy's goodput@99 at least
/// twice the fixed FP32 arm's, with accuracy delivered within one point of FP32's; and its
/// accuracy-weighted goodput@99 at least 1.3 times the best fixed arm's.
/// </summary>
public static class SloTargets
{
    public const double GoodputRatioTarget = 2.0;
    public const double AccuracyGapTarget = 0.01;
    public const double WeightedRatioTarget = 1.3;

    /// <summary>Checks the targets for <paramref name="adaptive"/> against <paramref name="baseline"/> (fixed FP32) and every arm in <paramref name="fixedArms"/>.</summary>
    public static IReadOnlyList<TargetCheck> Check(SweepResult result, string adaptive, string baseline, IReadOnlyList<string> fixedArms)
    {
        var inv = CultureInfo.InvariantCulture;
        var a = Arm(result, adaptive);
        var b = Arm(result, baseline);
        var fixedResults = fixedArms.Select(n => Arm(result, n)).ToList();
        var checks = new List<TargetCheck>();

        var ratio = b.Goodput99 > 0 ? a.Goodput99 / b.Goodput99 : double.PositiveInfinity;
        var perRepeat = a.Goodput99PerRepeat.Zip(b.Goodput99PerRepeat, (x, y) => y > 0 ? x / y : double.NaN).ToList();
        checks.Add(new TargetCheck(
            string.Create(inv, $"goodput@99 of {adaptive} ≥ {GoodputRatioTarget:0.#}× {baseline}'s"),
            string.Create(inv, $"{a.Goodput99:0.#} vs {b.Goodput99:0.#} req/s = {Ratio(ratio)} (per repeat: {string.Join(", ", perRepeat.Select(Ratio))})"),
            a.Goodput99 > 0 && ratio >= GoodputRatioTarget));

        var gap = b.MeanAccuracy - a.AccuracyAtGoodput99;
        checks.Add(new TargetCheck(
            string.Create(inv, $"accuracy of {adaptive} at its goodput@99 within {AccuracyGapTarget * 100:0.#} point of {baseline}'s"),
            string.Create(inv, $"{Percent(a.AccuracyAtGoodput99)} vs {Percent(b.MeanAccuracy)} ({(double.IsFinite(gap) ? (-gap * 100).ToString("+0.00;−0.00;0.00", inv) : "–")} points)"),
            double.IsFinite(gap) && gap <= AccuracyGapTarget));

        var best = fixedResults.MaxBy(f => f.AccuracyWeightedGoodput99)!;
        var weighted = best.AccuracyWeightedGoodput99 > 0 ? a.AccuracyWeightedGoodput99 / best.AccuracyWeightedGoodput99 : double.PositiveInfinity;
        checks.Add(new TargetCheck(
            string.Create(inv, $"accuracy-weighted goodput@99 of {adaptive} ≥ {WeightedRatioTarget:0.#}× the best fixed arm's"),
            string.Create(inv, $"{a.AccuracyWeightedGoodput99:0.#} vs {best.AccuracyWeightedGoodput99:0.#} ({best.Name}) = {Ratio(weighted)}"),
            a.AccuracyWeightedGoodput99 > 0 && weighted >= WeightedRatioTarget));
        return checks;
    }

    /// <summary>The checks as a markdown table.</summary>
    public static string Markdown(IReadOnlyList<TargetCheck> checks)
    {
        var text = new StringBuilder();
        text.AppendLine("| target | measured | met |");
        text.AppendLine("| --- | --- | --- |");
        foreach (var check in checks)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"| {check.Target} | {check.Measured} | {(check.Met ? "yes" : "**no**")} |");
        }

        return text.ToString();
    }

    private static ArmResult Arm(SweepResult result, string name) =>
        result.Arms.FirstOrDefault(a => a.Name == name) ?? throw new LoadGenException($"the sweep has no arm '{name}' (it has {string.Join(", ", result.Arms.Select(a => a.Name))}).");

    private static string Ratio(double value) => double.IsFinite(value) ? value.ToString("0.00", CultureInfo.InvariantCulture) + "×" : "–";

    private static string Percent(double value) => double.IsFinite(value) ? (value * 100).ToString("0.00", CultureInfo.InvariantCulture) + "%" : "–";
}
