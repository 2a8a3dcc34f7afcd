using System.Globalization;
using Grpc.Core;

namespace EffServe.LoadGen;

/// <summary>A server (or a server configured one way) to load: a name for the reports, a call invoker over a reused channel, and optionally its process's CPU time.</summary>
public sealed record BenchArm(string Name, CallInvoker Invoker, Func<double>? ServerCpuSeconds = null);

/// <summary>How a sweep runs: rates, duration of each run, repeats and seed.</summary>
public sealed record SweepSettings
{
    /// <summary>Offered rates in requests per second, run in ascending order.</summary>
    public required IReadOnlyList<double> Rates { get; init; }

    public double DurationSeconds { get; init; } = 3;

    /// <summary>Rounds over all rates and arms; each metric is reported as the median of repeats.</summary>
    public int Repeats { get; init; } = 3;

    /// <summary>Seeds the traces (repeat r uses seed + r) and the arm order of each rate.</summary>
    public int Seed { get; init; } = 20261126;

    public RunSettings Run { get; init; } = new();

    /// <summary>Idle time after each run, so that the next arm starts on a quiet machine.</summary>
    public TimeSpan Pause { get; init; } = TimeSpan.FromMilliseconds(300);

    /// <summary>Every problem with the settings, each naming the setting.</summary>
    public IReadOnlyList<string> Check()
    {
        var problems = new List<string>();
        if (Rates.Count == 0)
        {
            problems.Add("give at least one rate");
        }

        problems.AddRange(Rates.Where(r => !(r > 0) || double.IsInfinity(r)).Select(r => string.Create(CultureInfo.InvariantCulture, $"rate {r} is not a positive number of requests per second")));
        if (!(DurationSeconds > 0) || double.IsInfinity(DurationSeconds))
        {
            problems.Add(string.Create(CultureInfo.InvariantCulture, $"the duration must be a positive number of seconds, not {DurationSeconds}"));
        }

        if (Repeats < 1)
        {
            problems.Add(string.Create(CultureInfo.InvariantCulture, $"repeats must be 1 or more, not {Repeats}"));
        }

        return problems;
    }
}

/// <summary>One arm at one rate: every repeat's summary and the medians over repeats.</summary>
public sealed record RatePoint
{
    public required double Rate { get; init; }

    public required IReadOnlyList<RunSummary> Runs { get; init; }

    /// <summary>Median over repeats of the run's SLO attainment.</summary>
    public double Attainment => Median(Runs.Select(r => r.Attainment));

    /// <summary>Median over repeats of the accuracy delivered.</summary>
    public double Accuracy => Median(Runs.Select(r => r.Accuracy));

    /// <summary>Median over repeats of each class's attainment, by class name.</summary>
    public IReadOnlyDictionary<string, double> ClassAttainment =>
        Runs[0].Classes.Select((c, i) => (c.Name, Value: Median(Runs.Select(r => r.Classes[i].Attainment)))).ToDictionary(x => x.Name, x => x.Value, StringComparer.Ordinal);

    public double P50Ms => Median(Runs.Select(r => r.Latency.P50Ms));

    public double P90Ms => Median(Runs.Select(r => r.Latency.P90Ms));

    public double P99Ms => Median(Runs.Select(r => r.Latency.P99Ms));

    public double? ServerCpuMsPerRequest => Runs.All(r => r.ServerCpuMsPerRequest is not null) ? Median(Runs.Select(r => r.ServerCpuMsPerRequest!.Value)) : null;

    public double ComputeMsPerAnswer => Median(Runs.Select(r => r.ComputeMsPerAnswer));

    public double EnergyMjPerAnswer => Median(Runs.Select(r => r.EnergyMjPerAnswer));

    public double ClientCpuMsPerRequest => Median(Runs.Select(r => r.ClientCpuMsPerRequest));

    /// <summary>The largest share of late sends (over 1 ms) among the repeats.</summary>
    public double LateOver1Ms => Runs.Max(r => r.LateOver1Ms);

    /// <summary>Share of answers per variant, over every repeat.</summary>
    public IReadOnlyDictionary<string, double> VariantShares
    {
        get
        {
            var counts = new SortedDictionary<string, int>(StringComparer.Ordinal);
            foreach (var (name, count) in Runs.SelectMany(r => r.Variants))
            {
                counts[name] = counts.GetValueOrDefault(name) + count;
            }

            var total = Math.Max(1, counts.Values.Sum());
            return counts.ToDictionary(p => p.Key, p => (double)p.Value / total, StringComparer.Ordinal);
        }
    }

    /// <summary>Failed requests per status, summed over repeats, and how many requests were sent in all.</summary>
    public IReadOnlyDictionary<string, int> Failures
    {
        get
        {
            var counts = new SortedDictionary<string, int>(StringComparer.Ordinal);
            foreach (var (name, count) in Runs.SelectMany(r => r.Failures))
            {
                counts[name] = counts.GetValueOrDefault(name) + count;
            }

            return counts;
        }
    }

    public int Requests => Runs.Sum(r => r.Requests);

    /// <summary>The median of the finite values; NaN when there are none.</summary>
    public static double Median(IEnumerable<double> values)
    {
        var sorted = values.Where(double.IsFinite).Order().ToArray();
        if (sorted.Length == 0)
        {
            return double.NaN;
        }

        var mid = sorted.Length / 2;
        return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    }
}

/// <summary>One arm over every rate, with its goodputs.</summary>
public sealed record ArmResult
{
    public required string Name { get; init; }

    public required IReadOnlyList<RatePoint> Points { get; init; }

    /// <summary>Goodput@99 from the median attainment at each rate (<see cref="Goodput.Highest"/>).</summary>
    public double Goodput99 => Goodput.Highest(Points, 0.99);

    /// <summary>Goodput@90 from the median attainment at each rate.</summary>
    public double Goodput90 => Goodput.Highest(Points, 0.90);

    /// <summary>Accuracy delivered at the goodput@99 rate; NaN when no rate qualifies.</summary>
    public double AccuracyAtGoodput99 => Points.FirstOrDefault(p => p.Rate == Goodput99)?.Accuracy ?? double.NaN;

    /// <summary>Accuracy delivered at the goodput@90 rate; NaN when no rate qualifies.</summary>
    public double AccuracyAtGoodput90 => Points.FirstOrDefault(p => p.Rate == Goodput90)?.Accuracy ?? double.NaN;

    /// <summary>Goodput@99 × the accuracy delivered at that rate (0 when goodput@99 is 0).</summary>
    public double AccuracyWeightedGoodput99 => Goodput99 == 0 ? 0 : Goodput99 * AccuracyAtGoodput99;

    /// <summary>Goodput@90 × the accuracy delivered at that rate.</summary>
    public double AccuracyWeightedGoodput90 => Goodput90 == 0 ? 0 : Goodput90 * AccuracyAtGoodput90;

    /// <summary>Goodput@99 of each repeat alone (that repeat's attainment at each rate).</summary>
    public IReadOnlyList<double> Goodput99PerRepeat => PerRepeat(0.99);

    /// <summary>Mean accuracy delivered over every rate and repeat, weighted by answers.</summary>
    public double MeanAccuracy
    {
        get
        {
            var runs = Points.SelectMany(p => p.Runs).Where(r => double.IsFinite(r.Accuracy)).ToList();
            var answers = runs.Sum(r => (double)r.Answered);
            return answers == 0 ? double.NaN : runs.Sum(r => r.Accuracy * r.Answered) / answers;
        }
    }

    private List<double> PerRepeat(double threshold)
    {
        var repeats = Points.Min(p => p.Runs.Count);
        return [.. Enumerable.Range(0, repeats).Select(r => Goodput.Highest(Points.Select(p => (p.Rate, p.Runs[r].Attainment)), threshold))];
    }
}

/// <summary>Everything a sweep measured.</summary>
public sealed record SweepResult
{
    public required string Model { get; init; }

    public required IReadOnlyList<SloClass> Classes { get; init; }

    public required SweepSettings Settings { get; init; }

    public required IReadOnlyList<ArmResult> Arms { get; init; }
}

/// <summary>
/// Goodput: the highest offered rate of a sweep at which SLO attainment is at least the threshold
/// at that rate and at every lower rate of the sweep. A rate after the first failing one does not
/// count even if it passes again (noise), and when the lowest rate already fails the goodput is 0.
/// </summary>
public static class Goodput
{
    public static double Highest(IEnumerable<RatePoint> points, double threshold) =>
        Highest(points.Select(p => (p.Rate, p.Attainment)), threshold);

    public static double Highest(IEnumerable<(double Rate, double Attainment)> points, double threshold)
    {
        var best = 0.0;
        foreach (var (rate, attainment) in points.OrderBy(p => p.Rate))
        {
            if (!(attainment >= threshold))
            {
                break;
            }

            best = rate;
        }

        return best;
    }
}

/// <summary>Runs arms × rates × repeats, interleaved.</summary>
public static class Sweep
{
    /// <summary>
    /// For each repeat, for each rate in ascending order, runs the same seeded trace against every
    /// arm in an order shuffled by the seed (BENCHMARKING.md: one run, interleaved, medians of repeats).
    /// </summary>
    public static async Task<SweepResult> RunAsync(IReadOnlyList<BenchArm> arms, Workload workload, SweepSettings settings, Action<string>? log = null, CancellationToken cancellationToken = default)
    {
        var problems = settings.Check();
        if (problems.Count > 0)
        {
            throw new LoadGenException("the sweep is not usable: " + string.Join("; ", problems));
        }

        if (arms.Count == 0 || arms.Select(a => a.Name).Distinct(StringComparer.Ordinal).Count() != arms.Count)
        {
            throw new LoadGenException("give at least one arm, each with its own name.");
        }

        var rates = settings.Rates.Order().ToArray();
        var runs = arms.ToDictionary(a => a.Name, _ => rates.Select(_ => new List<RunSummary>()).ToArray(), StringComparer.Ordinal);
        var shares = workload.Mix.Shares();
        var order = new Random(settings.Seed);
        for (var repeat = 0; repeat < settings.Repeats; repeat++)
        {
            for (var r = 0; r < rates.Length; r++)
            {
                var trace = Trace.Generate(settings.Seed + repeat, rates[r], settings.DurationSeconds, shares, workload.SampleCount);
                foreach (var arm in arms.OrderBy(_ => order.Next()).ToArray())
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    var record = await OpenLoopRunner.RunAsync(arm.Invoker, workload, trace, rates[r], settings.DurationSeconds, settings.Run, arm.ServerCpuSeconds, cancellationToken).ConfigureAwait(false);
                    var summary = RunSummary.Of(record, workload.Mix);
                    runs[arm.Name][r].Add(summary);
                    log?.Invoke(string.Create(CultureInfo.InvariantCulture,
                        $"repeat {repeat + 1}/{settings.Repeats}, {rates[r]:0.#} req/s, {arm.Name}: attainment {summary.Attainment:P2}, accuracy {summary.Accuracy:P2}, p99 {summary.Latency.P99Ms:0.00} ms, {Describe(summary.Failures)}, late sends {summary.LateOver1Ms:P1}"));
                    foreach (var (status, message) in summary.FailureExamples)
                    {
                        log?.Invoke($"  {status}: {message}");
                    }

                    await Task.Delay(settings.Pause, cancellationToken).ConfigureAwait(false);
                }
            }
        }

        return new SweepResult
        {
            Model = workload.Model,
            Classes = workload.Mix.Classes,
            Settings = settings,
            Arms = [.. arms.Select(a => new ArmResult { Name = a.Name, Points = [.. rates.Select((rate, i) => new RatePoint { Rate = rate, Runs = runs[a.Name][i] })] })],
        };
    }

    /// <summary>"no failures" or "RESOURCE_EXHAUSTED 12, DEADLINE_EXCEEDED 3".</summary>
    public static string Describe(IReadOnlyDictionary<string, int> failures) =>
        failures.Count == 0 ? "no failures" : string.Join(", ", failures.Select(f => string.Create(CultureInfo.InvariantCulture, $"{f.Key} {f.Value}")));
}
