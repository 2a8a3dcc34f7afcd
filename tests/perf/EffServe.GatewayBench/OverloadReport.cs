using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using EffServe.LoadGen;
using Grpc.Core;

namespace EffServe.GatewayBench;

internal sealed record OverloadSettings(string Model, double SecondsPerStep, IReadOnlyList<double> Factors, double DeadlineMs, int Connections, IReadOnlyList<int> CapacityCallers, double CapacitySeconds, int Seed, bool Quick);

internal sealed record OverloadWorkload(string Model, string Request, int Samples, double AccuracyOnSample);

/// <summary>One closed-loop capacity window through the gateway.</summary>
internal sealed record CapacityWindowResult(int Callers, double Seconds, double AnswersPerSecond, long Answers, long Failed, double GatewayCpuUsPerAnswer, double ServiceCpuUsPerAnswer);

internal sealed record CapacityResult(string Source, double AnswersPerSecond, IReadOnlyList<CapacityWindowResult> Windows);

internal sealed record ProcessInfo(int Pid, int Threads);

/// <summary>A process during one step: resident memory at its start and at its peak (sampled every 250 ms), CPU seconds.</summary>
internal sealed record ProcessUse(string Name, int Pid, double StartRssMiB, double PeakRssMiB, double CpuSeconds);

/// <summary>Answers of one step by gRPC status.</summary>
/// <param name="Ok">Answers.</param>
/// <param name="OkWithinDeadline">Answers within the deadline from the scheduled send time.</param>
/// <param name="ResourceExhausted">RESOURCE_EXHAUSTED refusals.</param>
/// <param name="DeadlineExceededServer">DEADLINE_EXCEEDED sent by the server (before the client's deadline, or with a message).</param>
/// <param name="DeadlineExceededClient">Calls the client's own deadline ended: nothing came back in time.</param>
/// <param name="Unavailable">UNAVAILABLE.</param>
/// <param name="Other">Any other status.</param>
/// <param name="OtherByStatus">The other statuses by name.</param>
/// <param name="EmptyMessages">Non-OK statuses the server sent with an empty grpc-message.</param>
/// <param name="Transport">Non-OK statuses (counted above by status) the client made of a transport failure: a stream reset, a lost connection.</param>
internal sealed record StatusCounts(long Ok, long OkWithinDeadline, long ResourceExhausted, long DeadlineExceededServer, long DeadlineExceededClient, long Unavailable, long Other, IReadOnlyDictionary<string, long> OtherByStatus, long EmptyMessages, long Transport);

/// <summary>How late the client started its sends after their scheduled times.</summary>
internal sealed record LatenessResult(double P50Ms, double P99Ms, double MaxMs, double ThresholdMs, double ShareOverThreshold, bool KeptSchedule);

internal sealed record OverloadStepResult(
    double Factor,
    double OfferedPerSecond,
    long Calls,
    double Seconds,
    double ElapsedSeconds,
    double GoodputPerSecond,
    double GoodputOverCapacity,
    StatusCounts Counts,
    double OkP50Ms,
    double OkP99Ms,
    LatenessResult Lateness,
    ProcessUse Gateway,
    ProcessUse Service,
    double ClientCpuSeconds,
    string LoadAverageBefore,
    string LoadAverageAfter,
    IReadOnlyDictionary<string, string> FirstMessages);

internal sealed record TargetResult(string Name, string Measured, bool Met);

internal sealed record OverloadResult(
    string Command,
    string Revision,
    bool UncommittedChanges,
    string Time,
    MachineInfo Machine,
    string Dotnet,
    OverloadSettings Settings,
    OverloadWorkload Workload,
    CapacityResult Capacity,
    ProcessInfo Gateway,
    ProcessInfo Service,
    IReadOnlyList<OverloadStepResult> Steps,
    IReadOnlyList<TargetResult> Targets);

/// <summary>The overload verb's results: a table for the terminal, a markdown section for docs/benchmarks.md, JSON.</summary>
internal static class OverloadReport
{
    /// <summary>How much a process may grow over the steps and still count as bounded.</summary>
    public const double MemoryBoundMiB = 256;

    /// <summary>Goodput at 2× the capacity must be at least this share of the capacity.</summary>
    public const double GoodputTarget = 0.9;

    private static readonly CultureInfo s_inv = CultureInfo.InvariantCulture;

    public static OverloadStepResult Step(double factor, double rate, BenchOptions options, double capacity, OpenLoopRecord record, ProcessUse gateway, ProcessUse service, string loadBefore, string loadAfter)
    {
        var outcomes = record.Outcomes;
        var deadlineUs = options.DeadlineMs * 1000;
        var others = outcomes.Where(o => o.Status is not (StatusCode.OK or StatusCode.ResourceExhausted or StatusCode.DeadlineExceeded or StatusCode.Unavailable))
            .GroupBy(o => RunSummary.StatusName(o.Status))
            .ToDictionary(g => g.Key, g => (long)g.Count(), StringComparer.Ordinal);
        var counts = new StatusCounts(
            outcomes.LongCount(o => o.Status == StatusCode.OK),
            outcomes.LongCount(o => o.Status == StatusCode.OK && o.LatencyUs <= deadlineUs),
            outcomes.LongCount(o => o.Status == StatusCode.ResourceExhausted),
            outcomes.LongCount(o => o.Status == StatusCode.DeadlineExceeded && !o.ClientDeadline),
            outcomes.LongCount(o => o.ClientDeadline),
            outcomes.LongCount(o => o.Status == StatusCode.Unavailable),
            others.Values.Sum(),
            others,
            outcomes.LongCount(o => o.EmptyMessage),
            outcomes.LongCount(o => o.Transport));
        var okLatencies = outcomes.Where(o => o.Status == StatusCode.OK).Select(o => o.LatencyUs / 1000.0).ToList();
        var late = record.LateUs.Select(l => l / 1000.0).ToList();

        // The client keeps its schedule when at most 1% of sends start later than 1% of the deadline.
        var threshold = options.DeadlineMs / 100;
        var share = late.Count == 0 ? 0 : (double)late.Count(l => l > threshold) / late.Count;
        var goodput = counts.OkWithinDeadline / options.Seconds;
        return new OverloadStepResult(
            factor,
            Math.Round(rate, 1),
            outcomes.Length,
            options.Seconds,
            Math.Round(record.ElapsedSeconds, 2),
            Math.Round(goodput, 1),
            Math.Round(goodput / capacity, 3),
            counts,
            Math.Round(Stats.Percentile(okLatencies, 0.5), 2),
            Math.Round(Stats.Percentile(okLatencies, 0.99), 2),
            new LatenessResult(
                Math.Round(Stats.Percentile(late, 0.5), 3),
                Math.Round(Stats.Percentile(late, 0.99), 3),
                Math.Round(late.DefaultIfEmpty(0).Max(), 3),
                threshold,
                Math.Round(share, 4),
                share <= 0.01),
            gateway,
            service,
            Math.Round(record.ClientCpuSeconds, 2),
            loadBefore,
            loadAfter,
            record.Examples);
    }

    /// <summary>One progress line per step.</summary>
    public static string StepLine(OverloadStepResult s) => string.Create(s_inv,
        $"{s.Factor:0.##}×: goodput {s.GoodputPerSecond:F0}/s ({s.GoodputOverCapacity * 100:F0}% of capacity); OK {s.Counts.Ok}, RESOURCE_EXHAUSTED {s.Counts.ResourceExhausted}, DEADLINE_EXCEEDED {s.Counts.DeadlineExceededServer} server / {s.Counts.DeadlineExceededClient} client, UNAVAILABLE {s.Counts.Unavailable}, other {s.Counts.Other}, empty messages {s.Counts.EmptyMessages}, transport failures {s.Counts.Transport}; sends late p99 {s.Lateness.P99Ms:F1} ms{(s.Lateness.KeptSchedule ? "" : " (the client did NOT keep the schedule)")}");

    public static OverloadResult Build(
        BenchOptions options,
        IReadOnlyList<string> args,
        string root,
        OverloadWorkload workload,
        CapacityResult capacity,
        IReadOnlyList<OverloadStepResult> steps,
        ProcessInfo gateway,
        ProcessInfo service,
        string loadStart,
        string loadEnd)
    {
        var (revision, uncommitted, time) = BenchText.Provenance(root);
        return new OverloadResult(
            BenchText.Command("tests/perf/EffServe.GatewayBench/bin/Release/net10.0/EffServe.GatewayBench.dll", args),
            revision,
            uncommitted,
            time,
            new MachineInfo(Environment.ProcessorCount, Machine.CpuModel(), RuntimeInformation.OSDescription, loadStart, loadEnd),
            RuntimeInformation.FrameworkDescription,
            new OverloadSettings(options.Model, options.Seconds, options.Factors, options.DeadlineMs, options.Connections, options.CapacityCallers, options.CapacitySeconds, options.Seed, options.Quick),
            workload,
            capacity,
            gateway,
            service,
            steps,
            Targets(steps));
    }

    /// <summary>The targets of the gateway under overload, checked against the steps.</summary>
    public static IReadOnlyList<TargetResult> Targets(IReadOnlyList<OverloadStepResult> steps)
    {
        var targets = new List<TargetResult>();
        if (steps.Count == 0)
        {
            return targets;
        }

        var top = steps.FirstOrDefault(s => s.Factor == 2) ?? steps.MaxBy(s => s.Factor)!;
        targets.Add(new TargetResult(
            string.Create(s_inv, $"goodput at {top.Factor:0.##}× ≥ {GoodputTarget * 100:F0}% of capacity"),
            string.Create(s_inv, $"{top.GoodputOverCapacity * 100:F1}% ({top.GoodputPerSecond:F0}/s)"),
            top.GoodputOverCapacity >= GoodputTarget));
        var unavailable = steps.Sum(s => s.Counts.Unavailable);
        targets.Add(new TargetResult("zero UNAVAILABLE", string.Create(s_inv, $"{unavailable}"), unavailable == 0));
        var empty = steps.Sum(s => s.Counts.EmptyMessages);
        targets.Add(new TargetResult("every refusal with a message", string.Create(s_inv, $"{empty} without one"), empty == 0));
        var gatewayGrowth = steps.Max(s => s.Gateway.PeakRssMiB) - steps[0].Gateway.StartRssMiB;
        var serviceGrowth = steps.Max(s => s.Service.PeakRssMiB) - steps[0].Service.StartRssMiB;
        targets.Add(new TargetResult(
            string.Create(s_inv, $"memory bounded (each process grows < {MemoryBoundMiB:F0} MiB over the steps)"),
            string.Create(s_inv, $"gateway +{gatewayGrowth:F0} MiB, service +{serviceGrowth:F0} MiB"),
            gatewayGrowth < MemoryBoundMiB && serviceGrowth < MemoryBoundMiB));
        // On a shared machine a capacity window can catch a busy moment; a step that serves well
        // above the capacity shows it, and every ratio to the capacity is then too kind.
        var above = steps.Where(s => s.GoodputOverCapacity > 1.1).Select(s => s.Factor.ToString("0.##×", s_inv)).ToList();
        targets.Add(new TargetResult(
            "the capacity is a ceiling (no step's goodput above 1.1× it)",
            above.Count == 0 ? "yes" : $"no, at {string.Join(", ", above)}: the capacity was measured low; rerun, or pass --capacity",
            above.Count == 0));
        var behind = steps.Where(s => !s.Lateness.KeptSchedule).Select(s => s.Factor.ToString("0.##×", s_inv)).ToList();
        targets.Add(new TargetResult(
            "the client kept its schedule (≤ 1% of sends later than 1% of the deadline)",
            behind.Count == 0 ? "every step" : $"not at {string.Join(", ", behind)}: those steps offered less than they say",
            behind.Count == 0));
        return targets;
    }

    public static string Json(OverloadResult result) => JsonSerializer.Serialize(result, BenchText.Json);

    /// <summary>The terminal's view: aligned tables and the targets.</summary>
    public static string Text(OverloadResult r)
    {
        var s = new StringBuilder();
        s.AppendLine(s_inv, $"Gateway under overload: {r.Workload.Model} through the gateway, capacity {r.Capacity.AnswersPerSecond:F0} answers/s ({r.Capacity.Source}), deadline {r.Settings.DeadlineMs:0} ms, {r.Settings.SecondsPerStep:0.#} s per step{(r.Settings.Quick ? " (quick: a smoke run, not figures)" : "")}");
        s.AppendLine(s_inv, $"revision {r.Revision}{(r.UncommittedChanges ? " (uncommitted changes)" : "")}; gateway pid {r.Gateway.Pid}, service pid {r.Service.Pid}; load average {r.Machine.LoadAverageAtStart} → {r.Machine.LoadAverageAtEnd}");
        s.AppendLine();
        Aligned(s, AnswerHeaders, r.Steps.Select(AnswerRow));
        s.AppendLine();
        Aligned(s, ResourceHeaders, r.Steps.Select(ResourceRow));
        s.AppendLine();
        s.AppendLine("targets:");
        foreach (var t in r.Targets)
        {
            s.AppendLine(s_inv, $"  {(t.Met ? "met   " : "MISSED")}  {t.Name}: {t.Measured}");
        }

        return s.ToString();
    }

    /// <summary>The section for docs/benchmarks.md.</summary>
    public static string Markdown(OverloadResult r)
    {
        var settings = r.Settings;
        var s = new StringBuilder();
        s.AppendLine(s_inv, $"## Gateway under overload: `{settings.Model}`, open loop at {string.Join(", ", settings.Factors.Select(f => f.ToString("0.##×", s_inv)))} capacity");
        s.AppendLine();
        s.AppendLine(s_inv, $"- Command: `{r.Command}` (`make bench-overload`)");
        s.AppendLine(s_inv, $"- Revision: `{r.Revision}`{(r.UncommittedChanges ? " with uncommitted changes" : "")}, {r.Time}{(settings.Quick ? "; **--quick: a smoke run, not figures**" : "")}.");
        s.AppendLine(s_inv, $"- Machine: {r.Machine.Cores} cores, {r.Machine.Cpu}, {r.Machine.Os}, {r.Dotnet}; load average {r.Machine.LoadAverageAtStart} at start, {r.Machine.LoadAverageAtEnd} at end. Client, gateway and service share the cores (not pinned); threads at the end: gateway {r.Gateway.Threads} (pid {r.Gateway.Pid}), service {r.Service.Threads} (pid {r.Service.Pid}).");
        s.AppendLine(s_inv, $"- Workload: {r.Workload.Model}, {r.Workload.Request}; {r.Workload.Samples} samples of the eval set (accuracy through the gateway {r.Workload.AccuracyOnSample:F3}).");
        var windows = r.Capacity.Windows.Count == 0
            ? ""
            : ": " + string.Join("; ", r.Capacity.Windows.Select(w => string.Create(s_inv, $"{w.Callers} callers {w.AnswersPerSecond:F0}/s ({w.Failed} failed; gateway {w.GatewayCpuUsPerAnswer:F0} µs, service {w.ServiceCpuUsPerAnswer:F0} µs CPU per answer)")));
        s.AppendLine(s_inv, $"- Capacity: {r.Capacity.AnswersPerSecond:F0} answers/s, {r.Capacity.Source}{(r.Capacity.Windows.Count == 0 ? "" : string.Create(s_inv, $", the best closed-loop window of {settings.CapacitySeconds:0.#} s through the gateway"))}{windows}.");
        s.AppendLine(s_inv, $"- Method: per factor, a Poisson trace (seed {settings.Seed}) at factor × capacity for {settings.SecondsPerStep:0.#} s, sent open loop round-robin over {settings.Connections} gRPC channels; every call has a {settings.DeadlineMs:0} ms gRPC deadline from its scheduled send time, and latency is measured from that time. Goodput: OK answers within the deadline per second of the step. Memory: VmRSS every 250 ms; CPU: utime + stime from /proc/PID/stat around the step.");
        s.AppendLine();
        MarkdownTable(s, AnswerHeaders, r.Steps.Select(AnswerRow));
        s.AppendLine();
        MarkdownTable(s, ResourceHeaders, r.Steps.Select(ResourceRow));
        s.AppendLine();
        s.AppendLine("| target | measured | |");
        s.AppendLine("| --- | --- | --- |");
        foreach (var t in r.Targets)
        {
            s.AppendLine(s_inv, $"| {t.Name} | {t.Measured} | {(t.Met ? "met" : "**missed**")} |");
        }

        var messages = r.Steps.SelectMany(st => st.FirstMessages.Select(m => (st.Factor, m.Key, m.Value))).ToList();
        if (messages.Count > 0)
        {
            s.AppendLine();
            s.AppendLine("First message per status and step: " + string.Join("; ", messages.Select(m => string.Create(s_inv, $"{m.Factor:0.##}× {m.Key}: {(m.Value.Length == 0 ? "(empty)" : $"\"{m.Value}\"")}"))) + ".");
        }

        s.AppendLine();
        s.AppendLine("DEADLINE_EXCEEDED is split by who ended the call: *server* when it came back before the client's deadline or with a message, *client* when the client's own deadline ended it (grpc-dotnet hides grpc-status, so a server's message-less DEADLINE_EXCEEDED after the deadline counts as client). *empty msg* counts non-OK statuses the server sent with an empty grpc-message. *transport* counts the non-OK statuses (already counted under their status) that the client made of a transport failure, such as a stream the server reset. *sends late* is how late the client started calls after their scheduled times.");
        return s.ToString();
    }

    private static readonly string[] AnswerHeaders =
        ["factor", "offered/s", "calls", "goodput/s", "÷ capacity", "OK", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED server", "DEADLINE_EXCEEDED client", "UNAVAILABLE", "other", "empty msg", "transport", "OK p50 ms", "OK p99 ms"];

    private static readonly string[] ResourceHeaders =
        ["factor", "gateway RSS MiB start → peak", "service RSS MiB start → peak", "gateway CPU s", "service CPU s", "client CPU s", "sends late p50 / p99 / max ms", "client kept schedule", "load average before → after"];

    private static string[] AnswerRow(OverloadStepResult s) =>
    [
        s.Factor.ToString("0.##×", s_inv),
        s.OfferedPerSecond.ToString("F0", s_inv),
        s.Calls.ToString(s_inv),
        s.GoodputPerSecond.ToString("F0", s_inv),
        s.GoodputOverCapacity.ToString("F2", s_inv),
        s.Counts.Ok.ToString(s_inv),
        s.Counts.ResourceExhausted.ToString(s_inv),
        s.Counts.DeadlineExceededServer.ToString(s_inv),
        s.Counts.DeadlineExceededClient.ToString(s_inv),
        s.Counts.Unavailable.ToString(s_inv),
        s.Counts.Other == 0 ? "0" : $"{s.Counts.Other} ({string.Join(", ", s.Counts.OtherByStatus.Select(o => $"{o.Key} {o.Value}"))})",
        s.Counts.EmptyMessages.ToString(s_inv),
        s.Counts.Transport.ToString(s_inv),
        s.OkP50Ms.ToString("F1", s_inv),
        s.OkP99Ms.ToString("F1", s_inv),
    ];

    private static string[] ResourceRow(OverloadStepResult s) =>
    [
        s.Factor.ToString("0.##×", s_inv),
        string.Create(s_inv, $"{s.Gateway.StartRssMiB:F0} → {s.Gateway.PeakRssMiB:F0}"),
        string.Create(s_inv, $"{s.Service.StartRssMiB:F0} → {s.Service.PeakRssMiB:F0}"),
        s.Gateway.CpuSeconds.ToString("F1", s_inv),
        s.Service.CpuSeconds.ToString("F1", s_inv),
        s.ClientCpuSeconds.ToString("F1", s_inv),
        string.Create(s_inv, $"{s.Lateness.P50Ms:F2} / {s.Lateness.P99Ms:F1} / {s.Lateness.MaxMs:F0}"),
        s.Lateness.KeptSchedule ? "yes" : string.Create(s_inv, $"NO ({s.Lateness.ShareOverThreshold * 100:F1}% > {s.Lateness.ThresholdMs:0.#} ms)"),
        $"{s.LoadAverageBefore} → {s.LoadAverageAfter}",
    ];

    private static void Aligned(StringBuilder s, string[] headers, IEnumerable<string[]> rows)
    {
        var all = rows.Prepend(headers).ToList();
        var widths = headers.Select((_, c) => all.Max(r => r[c].Length)).ToArray();
        foreach (var row in all)
        {
            s.AppendLine(string.Join("  ", row.Select((cell, c) => c == 0 ? cell.PadRight(widths[c]) : cell.PadLeft(widths[c]))).TrimEnd());
        }
    }

    private static void MarkdownTable(StringBuilder s, string[] headers, IEnumerable<string[]> rows)
    {
        s.AppendLine("| " + string.Join(" | ", headers) + " |");
        s.AppendLine("| " + string.Join(" | ", headers.Select((_, c) => c == 0 ? "---" : "---:")) + " |");
        foreach (var row in rows)
        {
            s.AppendLine("| " + string.Join(" | ", row) + " |");
        }
    }
}
