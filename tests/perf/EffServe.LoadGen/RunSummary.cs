using System.Text.RegularExpressions;
using Grpc.Core;

namespace EffServe.LoadGen;

/// <summary>Latency percentiles in milliseconds.</summary>
public sealed record LatencySummary(double P50Ms, double P90Ms, double P99Ms, double MaxMs, double MeanMs)
{
    public static LatencySummary Of(LatencyHistogram histogram) => new(
        histogram.Percentile(0.50) / 1000,
        histogram.Percentile(0.90) / 1000,
        histogram.Percentile(0.99) / 1000,
        histogram.Count == 0 ? double.NaN : histogram.MaxMicroseconds / 1000.0,
        histogram.MeanMicroseconds / 1000);
}

/// <summary>One SLO class in one run.</summary>
public sealed record ClassSummary(string Name, double SloMs, int Requests, int Met, double Attainment, LatencySummary Latency);

/// <summary>
/// What one run of a trace delivered. SLO attainment is the share of sent requests that answered
/// within their class's SLO, measured from the scheduled send time; refused, failed and timed-out
/// requests count as misses.
/// </summary>
public sealed partial record RunSummary
{
    public required double OfferedRate { get; init; }

    public required int Requests { get; init; }

    /// <summary>Requests answered OK within their SLO.</summary>
    public required int Met { get; init; }

    public required double Attainment { get; init; }

    public required IReadOnlyList<ClassSummary> Classes { get; init; }

    /// <summary>Latency of every request, answered or not (time to the answer or the error).</summary>
    public required LatencySummary Latency { get; init; }

    /// <summary>Requests answered OK (in time or not).</summary>
    public required int Answered { get; init; }

    /// <summary>Share of the answers, among those that could be scored, whose top class is the sample's label; NaN when none could be.</summary>
    public required double Accuracy { get; init; }

    /// <summary>Share of the answers within their SLO whose top class is the label; NaN when none.</summary>
    public required double AccuracyMet { get; init; }

    /// <summary>Answers per variant (<c>effserve.variant</c>; "(none)" when the server does not say).</summary>
    public required IReadOnlyDictionary<string, int> Variants { get; init; }

    /// <summary>Answers per early-exit stage, for answers that name one.</summary>
    public required IReadOnlyDictionary<long, int> ExitStages { get; init; }

    /// <summary>Requests that did not answer, by gRPC status (DEADLINE_EXCEEDED (client) when the client's own deadline ended it).</summary>
    public required IReadOnlyDictionary<string, int> Failures { get; init; }

    /// <summary>The first message the server (or the client) gave for each failing status.</summary>
    public IReadOnlyDictionary<string, string> FailureExamples { get; init; } = new Dictionary<string, string>();

    /// <summary>Server CPU milliseconds per sent request, from the process's CPU time; null when the server was not ours to measure.</summary>
    public double? ServerCpuMsPerRequest { get; init; }

    /// <summary>Mean <c>effserve.compute_us</c> of the answers, in milliseconds; NaN when the server does not say.</summary>
    public required double ComputeMsPerAnswer { get; init; }

    /// <summary>Mean <c>effserve.energy_mj</c> of the answers; NaN when the server does not say.</summary>
    public required double EnergyMjPerAnswer { get; init; }

    /// <summary>Client (load generator) CPU milliseconds per request.</summary>
    public required double ClientCpuMsPerRequest { get; init; }

    /// <summary>Share of sends that started more than 1 ms after their scheduled time.</summary>
    public required double LateOver1Ms { get; init; }

    /// <summary>99th percentile of how late sends started, in milliseconds.</summary>
    public required double LateP99Ms { get; init; }

    /// <summary>Requests per second the run answered OK (over the trace's duration).</summary>
    public required double Throughput { get; init; }

    /// <summary>Summarises a run against the mix it was sent with.</summary>
    public static RunSummary Of(RunRecord run, LoadMix mix)
    {
        var classes = mix.Classes;
        var perClass = classes.Select(_ => new LatencyHistogram()).ToArray();
        var metPerClass = new int[classes.Count];
        var sentPerClass = new int[classes.Count];
        var all = new LatencyHistogram();
        var variants = new SortedDictionary<string, int>(StringComparer.Ordinal);
        var stages = new SortedDictionary<long, int>();
        var failures = new SortedDictionary<string, int>(StringComparer.Ordinal);
        int answered = 0, scored = 0, correct = 0, scoredMet = 0, correctMet = 0, computeCount = 0, energyCount = 0, lateOver = 0;
        double computeUs = 0, energy = 0;
        foreach (ref readonly var o in run.Outcomes.AsSpan())
        {
            if (!o.Sent)
            {
                continue;
            }

            sentPerClass[o.ClassIndex]++;
            perClass[o.ClassIndex].Record(o.LatencyUs);
            all.Record(o.LatencyUs);
            if (o.LateUs > 1000)
            {
                lateOver++;
            }

            if (o.Status != StatusCode.OK)
            {
                var name = StatusName(o.Status) + (o.ClientDeadline ? " (client)" : "");
                failures[name] = failures.GetValueOrDefault(name) + 1;
                continue;
            }

            answered++;
            var met = o.LatencyUs <= classes[o.ClassIndex].SloMs * 1000;
            if (met)
            {
                metPerClass[o.ClassIndex]++;
            }

            var variant = o.Variant ?? "(none)";
            variants[variant] = variants.GetValueOrDefault(variant) + 1;
            if (o.ExitStage > 0)
            {
                stages[o.ExitStage] = stages.GetValueOrDefault(o.ExitStage) + 1;
            }

            if (o.Correct >= 0)
            {
                scored++;
                correct += o.Correct;
                if (met)
                {
                    scoredMet++;
                    correctMet += o.Correct;
                }
            }

            if (o.ComputeUs >= 0)
            {
                computeCount++;
                computeUs += o.ComputeUs;
            }

            if (!double.IsNaN(o.EnergyMj))
            {
                energyCount++;
                energy += o.EnergyMj;
            }
        }

        var sent = sentPerClass.Sum();
        var metAll = metPerClass.Sum();
        return new RunSummary
        {
            OfferedRate = run.RatePerSecond,
            Requests = sent,
            Met = metAll,
            Attainment = sent == 0 ? double.NaN : (double)metAll / sent,
            Classes = [.. classes.Select((c, i) => new ClassSummary(c.Name, c.SloMs, sentPerClass[i], metPerClass[i], sentPerClass[i] == 0 ? double.NaN : (double)metPerClass[i] / sentPerClass[i], LatencySummary.Of(perClass[i])))],
            Latency = LatencySummary.Of(all),
            Answered = answered,
            Accuracy = scored == 0 ? double.NaN : (double)correct / scored,
            AccuracyMet = scoredMet == 0 ? double.NaN : (double)correctMet / scoredMet,
            Variants = variants,
            ExitStages = stages,
            Failures = failures,
            FailureExamples = run.FailureExamples,
            ServerCpuMsPerRequest = run.ServerCpuSeconds is { } cpu && sent > 0 ? cpu * 1000 / sent : null,
            ComputeMsPerAnswer = computeCount == 0 ? double.NaN : computeUs / computeCount / 1000,
            EnergyMjPerAnswer = energyCount == 0 ? double.NaN : energy / energyCount,
            ClientCpuMsPerRequest = sent == 0 ? double.NaN : run.ClientCpuSeconds * 1000 / sent,
            LateOver1Ms = sent == 0 ? double.NaN : (double)lateOver / sent,
            LateP99Ms = run.Lateness.Percentile(0.99) / 1000,
            Throughput = answered / run.DurationSeconds,
        };
    }

    /// <summary>The canonical name of a gRPC status (RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED ...).</summary>
    public static string StatusName(StatusCode code) => CamelBoundary().Replace(code.ToString(), "$1_$2").ToUpperInvariant();

    [GeneratedRegex("([a-z])([A-Z])")]
    private static partial Regex CamelBoundary();
}
