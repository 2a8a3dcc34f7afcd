using System.Text.Json;
using EffServe.LoadGen;
using Grpc.Core;

namespace EffServe.LoadGen.Tests;

public sealed class SummaryTests
{
    private static readonly LoadMix s_mix = LoadMix.ParseSpecs(["tight:5", "loose:50"]);

    [Fact]
    public void Of_MixedOutcomes_CountsMissesRefusalsAndAccuracy()
    {
        RequestOutcome[] outcomes =
        [
            Answer(0, 4_000, "int8", correct: true),          // tight, in time
            Answer(0, 6_000, "fp32", correct: true),          // tight, late: a miss
            Answer(1, 30_000, "fp32", correct: false, stage: 0), // loose, in time, wrong
            Answer(1, 5_000, "early-exit", correct: true, stage: 2),
            Failed(0, 300, StatusCode.ResourceExhausted),
            Failed(1, 1_000_000, StatusCode.DeadlineExceeded, client: true),
            Failed(1, 2_000, StatusCode.DeadlineExceeded),
            default, // never sent (cancelled run)
        ];

        var summary = RunSummary.Of(Record(outcomes, rate: 100), s_mix);

        Assert.Equal(7, summary.Requests);
        Assert.Equal(3, summary.Met);
        Assert.Equal(3 / 7.0, summary.Attainment, 9);
        Assert.Equal(("tight", 3, 1), (summary.Classes[0].Name, summary.Classes[0].Requests, summary.Classes[0].Met));
        Assert.Equal(("loose", 4, 2), (summary.Classes[1].Name, summary.Classes[1].Requests, summary.Classes[1].Met));
        Assert.Equal(4, summary.Answered);
        Assert.Equal(0.75, summary.Accuracy, 9);
        Assert.Equal(2 / 3.0, summary.AccuracyMet, 9);
        Assert.Equal(new Dictionary<string, int> { ["early-exit"] = 1, ["fp32"] = 2, ["int8"] = 1 }, summary.Variants);
        Assert.Equal(new Dictionary<long, int> { [2] = 1 }, summary.ExitStages);
        Assert.Equal(new Dictionary<string, int> { ["DEADLINE_EXCEEDED"] = 1, ["DEADLINE_EXCEEDED (client)"] = 1, ["RESOURCE_EXHAUSTED"] = 1 }, summary.Failures);
        Assert.Equal("queue full; retry in 10 ms", summary.FailureExamples["RESOURCE_EXHAUSTED"]);
        Assert.Equal(100.0 / 7, summary.ServerCpuMsPerRequest!.Value, 9);
        Assert.Equal(0.2, summary.ComputeMsPerAnswer, 9);
        Assert.Equal(1 / 7.0, summary.LateOver1Ms, 9);
        Assert.Equal(4 / 2.0, summary.Throughput, 9);
    }

    [Fact]
    public void Goodput_HighestRateOfThePassingPrefix()
    {
        (double, double)[] curve = [(800, 0.995), (100, 0.999), (200, 0.995), (400, 0.98)];

        Assert.Equal(200, Goodput.Highest(curve, 0.99));
        Assert.Equal(800, Goodput.Highest(curve, 0.90));
        Assert.Equal(0, Goodput.Highest([(100, 0.5), (200, 1.0)], 0.99));
        Assert.Equal(0, Goodput.Highest([(100, double.NaN)], 0.9));
    }

    [Fact]
    public void RatePoint_MediansOfRepeats()
    {
        var point = new RatePoint { Rate = 100, Runs = [Summary(0.9, 0.97), Summary(0.99, 0.96), Summary(0.5, 0.95)] };

        Assert.Equal(0.9, point.Attainment);
        Assert.Equal(0.96, point.Accuracy);
        Assert.Equal(0.9, point.ClassAttainment["tight"]);
    }

    [Fact]
    public void ArmResult_GoodputAndAccuracyWeighted()
    {
        var arm = Arm("a", (100, 1.0, 0.97), (200, 0.995, 0.96), (400, 0.95, 0.95), (800, 0.5, 0.9));

        Assert.Equal(200, arm.Goodput99);
        Assert.Equal(400, arm.Goodput90);
        Assert.Equal(0.96, arm.AccuracyAtGoodput99);
        Assert.Equal(192, arm.AccuracyWeightedGoodput99, 9);
        Assert.Equal(380, arm.AccuracyWeightedGoodput90, 9);
        Assert.Equal([200.0], arm.Goodput99PerRepeat);
    }

    [Fact]
    public void SloTargets_MetAndMissed()
    {
        var result = Result(
            Arm("slo-aware", (100, 1, 0.972), (200, 1, 0.972), (400, 0.995, 0.970), (800, 0.8, 0.96)),
            Arm("fixed fp32", (100, 1, 0.9725), (200, 0.995, 0.9725), (400, 0.2, 0.9725), (800, 0, 0.9725)),
            Arm("fixed int8", (100, 1, 0.972), (200, 1, 0.972), (400, 0.991, 0.972), (800, 0.3, 0.972)));

        var checks = SloTargets.Check(result, "slo-aware", "fixed fp32", ["fixed fp32", "fixed int8"]);

        Assert.True(checks[0].Met, checks[0].Measured);          // 400 vs 200 = 2×
        Assert.Contains("400 vs 200 req/s = 2.00×", checks[0].Measured, StringComparison.Ordinal);
        Assert.True(checks[1].Met, checks[1].Measured);          // 97.00% vs 97.25%
        Assert.False(checks[2].Met, checks[2].Measured);         // int8 reaches 400 too
        Assert.Contains("(fixed int8)", checks[2].Measured, StringComparison.Ordinal);
        Assert.Contains("| **no** |", SloTargets.Markdown(checks), StringComparison.Ordinal);

        var e = Assert.Throws<LoadGenException>(() => SloTargets.Check(result, "adaptive", "fixed fp32", []));
        Assert.Contains("no arm 'adaptive'", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Reports_JsonMarkdownAndPng()
    {
        var result = Result(
            Arm("slo-aware", (100, 1, 0.97), (200, 0.95, 0.96)),
            Arm("fixed fp32", (100, 0.99, 0.9725), (200, 0.2, 0.9725)));

        using var json = JsonDocument.Parse(Reports.Json(result, new Dictionary<string, string> { ["command"] = "make bench-slo" }));
        Assert.Equal("make bench-slo", json.RootElement.GetProperty("context").GetProperty("command").GetString());
        var arms = json.RootElement.GetProperty("result").GetProperty("arms");
        Assert.Equal(2, arms.GetArrayLength());
        Assert.Equal(100, arms[0].GetProperty("goodput99").GetDouble());
        Assert.Equal(200, arms[0].GetProperty("goodput90").GetDouble());
        Assert.Equal(0.95, arms[0].GetProperty("points")[1].GetProperty("attainment").GetDouble());

        var markdown = Reports.Markdown(result);
        Assert.Contains("| slo-aware | 100 | 200 | 97.00% | 97 |", markdown, StringComparison.Ordinal);
        Assert.Contains("| 200 | fixed fp32 | 20.00% |", markdown, StringComparison.Ordinal);
        Assert.Contains("tight (5 ms)", markdown, StringComparison.Ordinal);

        var png = Reports.Plot(result, "test", 800, 300);
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, png[..4]);
        Assert.Equal(800, System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(16, 4)));
        Assert.Equal(300, System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(20, 4)));
    }

    [Fact]
    public void Plot_RateWhereTheClientSentLate_IsMarked()
    {
        // A rate where more than 1% of sends left over 1 ms late offered less load than it says:
        // the plot rings it, so the picture differs from the same results sent on time.
        var onTime = Result(Arm("fixed fp32", (100, 0.99, 0.97), (200, 0.5, 0.97)));
        var lateArm = Arm("fixed fp32", (100, 0.99, 0.97), (200, 0.5, 0.97));
        var late = Result(lateArm with
        {
            Points = [lateArm.Points[0], new RatePoint { Rate = 200, Runs = [Summary(0.5, 0.97) with { OfferedRate = 200, LateOver1Ms = 0.27 }] }],
        });

        Assert.False(Reports.Plot(onTime, "on time").AsSpan().SequenceEqual(Reports.Plot(late, "on time")));
    }

    private static RequestOutcome Answer(int c, long latencyUs, string variant, bool correct, long stage = 0) => new()
    {
        Sent = true, ClassIndex = c, LatencyUs = latencyUs, Status = StatusCode.OK, Variant = variant,
        Correct = correct ? (sbyte)1 : (sbyte)0, ExitStage = stage, ComputeUs = 200, EnergyMj = double.NaN,
    };

    private static RequestOutcome Failed(int c, long latencyUs, StatusCode status, bool client = false) => new()
    {
        Sent = true, ClassIndex = c, LatencyUs = latencyUs, Status = status, ClientDeadline = client, Correct = -1,
        ComputeUs = -1, EnergyMj = double.NaN, LateUs = client ? 1500 : 0,
    };

    private static RunRecord Record(RequestOutcome[] outcomes, double rate) => new()
    {
        Trace = [],
        Outcomes = outcomes,
        RatePerSecond = rate,
        DurationSeconds = 2,
        ElapsedSeconds = 2.1,
        Lateness = new LatencyHistogram(),
        ServerCpuSeconds = 0.1,
        ClientCpuSeconds = 0.01,
        FailureExamples = new Dictionary<string, string> { ["RESOURCE_EXHAUSTED"] = "queue full; retry in 10 ms" },
    };

    private static RunSummary Summary(double attainment, double accuracy) => new()
    {
        OfferedRate = 100,
        Requests = 1000,
        Met = (int)(attainment * 1000),
        Attainment = attainment,
        Classes = [new ClassSummary("tight", 5, 1000, (int)(attainment * 1000), attainment, new LatencySummary(1, 2, 3, 4, 1.5))],
        Latency = new LatencySummary(1, 2, 3, 4, 1.5),
        Answered = 1000,
        Accuracy = accuracy,
        AccuracyMet = accuracy,
        Variants = new Dictionary<string, int> { ["fp32"] = 1000 },
        ExitStages = new Dictionary<long, int>(),
        Failures = new Dictionary<string, int>(),
        ComputeMsPerAnswer = 0.3,
        EnergyMjPerAnswer = double.NaN,
        ClientCpuMsPerRequest = 0.1,
        LateOver1Ms = 0,
        LateP99Ms = 0.1,
        Throughput = 100,
    };

    private static ArmResult Arm(string name, params (double Rate, double Attainment, double Accuracy)[] points) => new()
    {
        Name = name,
        Points = [.. points.Select(p => new RatePoint { Rate = p.Rate, Runs = [Summary(p.Attainment, p.Accuracy) with { OfferedRate = p.Rate }] })],
    };

    private static SweepResult Result(params ArmResult[] arms) => new()
    {
        Model = "shapes",
        Classes = [new SloClass { Name = "tight", SloMs = 5 }],
        Settings = new SweepSettings { Rates = [.. arms[0].Points.Select(p => p.Rate)], Repeats = 1, DurationSeconds = 1 },
        Arms = arms,
    };
}
