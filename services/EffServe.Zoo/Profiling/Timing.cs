namespace EffServe.Zoo.Profiling;

/// <summary>Order statistics of a set of run times.</summary>
public static class LatencyStatistics
{
    /// <summary>The median: the middle value, or the mean of the two middle values.</summary>
    public static double Median(IReadOnlyList<double> values)
    {
        var sorted = Sorted(values);
        var n = sorted.Length;
        return n % 2 == 1 ? sorted[n / 2] : (sorted[(n / 2) - 1] + sorted[n / 2]) / 2;
    }

    /// <summary>
    /// The nearest-rank percentile: the smallest value with at least <paramref name="percent"/>% of
    /// the values at or below it. Never below the median for percentiles of 50 and up.
    /// </summary>
    public static double Percentile(IReadOnlyList<double> values, double percent)
    {
        if (percent is not (> 0 and <= 100))
        {
            throw new ArgumentOutOfRangeException(nameof(percent), percent, "A percentile lies in (0, 100].");
        }

        var sorted = Sorted(values);
        var rank = (int)Math.Ceiling(percent / 100 * sorted.Length);
        return sorted[Math.Clamp(rank, 1, sorted.Length) - 1];
    }

    private static double[] Sorted(IReadOnlyList<double> values)
    {
        if (values.Count == 0)
        {
            throw new ArgumentException("No values to summarise.", nameof(values));
        }

        var sorted = values.ToArray();
        Array.Sort(sorted);
        return sorted;
    }
}

/// <summary>How warm-up went: windows run, runs per window, and whether the last three agreed.</summary>
public sealed record WarmupOutcome(int Windows, int RunsPerWindow, bool Steady);

/// <summary>
/// Warm-up as BENCHMARKING.md asks: run windows of runs until the medians of the last three windows
/// agree within a tolerance. A window holds enough runs to last about <see cref="MeasurementSettings.WarmupWindow"/>.
/// </summary>
public static class Warmup
{
    /// <param name="runMilliseconds">Performs one run and returns its time in milliseconds.</param>
    /// <param name="settings">Window length, tolerance and the most windows to run.</param>
    /// <param name="cancellationToken">Stops warming up between runs.</param>
    public static WarmupOutcome Run(Func<double> runMilliseconds, MeasurementSettings settings, CancellationToken cancellationToken)
    {
        var first = runMilliseconds();
        var targetMs = settings.WarmupWindow.TotalMilliseconds;
        var perWindow = first <= 0
            ? 1000
            : (int)Math.Clamp(Math.Ceiling(targetMs / first), settings.MinWindowRuns, 1000);
        var medians = new List<double>();
        var window = new double[perWindow];
        while (medians.Count < settings.MaxWarmupWindows)
        {
            for (var i = 0; i < perWindow; i++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                window[i] = runMilliseconds();
            }

            medians.Add(LatencyStatistics.Median(window));
            if (medians.Count >= 3 && Agree(medians[^3..], settings.WarmupTolerance))
            {
                return new WarmupOutcome(medians.Count, perWindow, Steady: true);
            }
        }

        return new WarmupOutcome(medians.Count, perWindow, Steady: false);
    }

    /// <summary>Whether the largest value is within <paramref name="tolerance"/> of the smallest.</summary>
    public static bool Agree(IReadOnlyList<double> medians, double tolerance)
    {
        var min = medians.Min();
        var max = medians.Max();
        return min > 0 ? max <= min * (1 + tolerance) : max == min;
    }
}
