namespace EffServe.GatewayBench;

/// <summary>A median over rounds with its 95% bootstrap interval.</summary>
/// <param name="Median">Median of the per-round values.</param>
/// <param name="Low">2.5th percentile of the bootstrap medians.</param>
/// <param name="High">97.5th percentile of the bootstrap medians.</param>
/// <param name="Rounds">How many per-round values there were.</param>
internal sealed record Estimate(double Median, double Low, double High, int Rounds);

internal static class Stats
{
    /// <summary>The nearest-rank percentile (q in [0, 1]); NaN for no values.</summary>
    public static double Percentile(IReadOnlyCollection<double> values, double q)
    {
        if (values.Count == 0)
        {
            return double.NaN;
        }

        var sorted = values.Order().ToArray();
        var index = Math.Clamp((int)Math.Ceiling(q * sorted.Length) - 1, 0, sorted.Length - 1);
        return sorted[index];
    }

    /// <summary>The median (mean of the two middle values for an even count); NaN for no values.</summary>
    public static double Median(IReadOnlyCollection<double> values)
    {
        if (values.Count == 0)
        {
            return double.NaN;
        }

        var sorted = values.Order().ToArray();
        var mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }

    /// <summary>
    /// Median of per-round values with a 95% percentile-bootstrap interval (2,000 resamples, seeded),
    /// leaving out rounds whose value is not finite (a ratio over a zero or negative hop).
    /// </summary>
    public static Estimate MedianWithInterval(IEnumerable<double> perRound, int seed)
    {
        var values = perRound.Where(double.IsFinite).ToArray();
        if (values.Length == 0)
        {
            return new Estimate(double.NaN, double.NaN, double.NaN, 0);
        }

        var random = new Random(seed);
        var medians = new double[2000];
        var sample = new double[values.Length];
        for (var b = 0; b < medians.Length; b++)
        {
            for (var i = 0; i < sample.Length; i++)
            {
                sample[i] = values[random.Next(values.Length)];
            }

            medians[b] = Median(sample);
        }

        return new Estimate(Median(values), Percentile(medians, 0.025), Percentile(medians, 0.975), values.Length);
    }
}
