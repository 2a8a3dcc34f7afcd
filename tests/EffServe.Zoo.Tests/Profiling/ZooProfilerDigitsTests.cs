using EffServe.Core.Zoo;
using EffServe.Onnx;
using EffServe.Zoo.Profiling;

namespace EffServe.Zoo.Tests.Profiling;

/// <summary>A temporary copy of zoo/digits, stripped of any profiles and then profiled once for the whole class.</summary>
public sealed class DigitsProfileFixture : IDisposable
{
    private readonly ZooCopy _zoo = new(Profiles.DigitsFolder);

    public DigitsProfileFixture()
    {
        Original = Profiles.WithoutProfiles(File.ReadAllText(_zoo.Manifest("digits")));
        File.WriteAllText(_zoo.Manifest("digits"), Original);
        Report = Profiles.Profiler().Profile(new ProfileRequest(_zoo.Path, "digits") { Measurement = Profiles.Quick });
        Written = File.ReadAllText(_zoo.Manifest("digits"));
        Reloaded = new ZooLoader(new OnnxGraphReader()).LoadModel(Path.Combine(_zoo.Path, "digits"));
    }

    /// <summary>The manifest before profiling (no profiles).</summary>
    public string Original { get; }

    public ProfileReport Report { get; }

    /// <summary>The manifest after profiling.</summary>
    public string Written { get; }

    /// <summary>The model as the service would load the written manifest.</summary>
    public ModelDefinition Reloaded { get; }

    public string ZooPath => _zoo.Path;

    public void Dispose() => _zoo.Dispose();
}

public sealed class ZooProfilerDigitsTests(DigitsProfileFixture digits) : IClassFixture<DigitsProfileFixture>
{
    private static readonly int[] s_defaultBatches = [1, 2, 4, 8, 16, 32];

    [Fact]
    public void Profile_Digits_EveryVariantReloadsWithDateMachineAndLatencyPerBatchSize()
    {
        Assert.True(digits.Report.Written);
        Assert.Equal(["fp32", "early-exit"], digits.Reloaded.Variants.Select(v => v.Name));
        foreach (var variant in digits.Reloaded.Variants)
        {
            var profile = Assert.IsType<VariantProfile>(variant.Profile);
            Assert.Equal(Profiles.MeasuredAtText, profile.MeasuredAt);
            Assert.Contains("ONNX Runtime", profile.Machine, StringComparison.Ordinal);
            Assert.Contains("1 intra-op thread", profile.Machine, StringComparison.Ordinal);
            Assert.Equal(s_defaultBatches, profile.Latency.Select(l => l.BatchSize));
            Assert.All(profile.Latency, l =>
            {
                Assert.True(l.P50Ms > 0, $"batch {l.BatchSize}: p50 {l.P50Ms}");
                Assert.True(l.P50Ms <= l.P95Ms, $"batch {l.BatchSize}: p50 {l.P50Ms} > p95 {l.P95Ms}");
                Assert.True(l.ItemsPerSecond > 0, $"batch {l.BatchSize}: {l.ItemsPerSecond} items/s");
            });
        }
    }

    [Fact]
    public void Profile_Digits_Fp32AccuracyEqualsAnIndependentRunOfTheModel()
    {
        var correct = Profiles.CountCorrect(Path.Combine(Profiles.DigitsFolder, "fp32", "digits.onnx"), "logits");

        var fp32 = digits.Report.Variants.Single(v => v.Name == "fp32");
        Assert.Equal(540, digits.Report.EvaluationSamples);
        Assert.Equal(correct, fp32.Accuracy!.Correct);
        Assert.Equal(Math.Round(correct / 540.0, 6), digits.Reloaded.FindVariant("fp32")!.Profile!.Accuracy);
    }

    [Fact]
    public void Profile_Digits_ThresholdGridRunsEveryStageAtOneAndOnlyTheFirstAtZero()
    {
        var fp32 = digits.Reloaded.FindVariant("fp32")!.Profile!;
        var grid = digits.Reloaded.FindVariant("early-exit")!.Profile!.Thresholds;

        Assert.Equal(ProfileRequest.DefaultThresholds, grid.Select(t => t.Threshold));
        var full = grid.Single(t => t.Threshold == 1.0);
        Assert.Equal(fp32.Accuracy, full.Accuracy);
        Assert.Equal(3.0, full.MeanStages);
        var first = grid.Single(t => t.Threshold == 0.0);
        Assert.Equal(1.0, first.MeanStages);
        Assert.All(grid, t => Assert.True(t.MeanLatencyMs > 0 && t.MeanStages is >= 1 and <= 3));
        Assert.Equal(grid.Select(t => t.MeanStages).Order(), grid.Select(t => t.MeanStages));
    }

    [Fact]
    public void Profile_Digits_ThresholdZeroAccuracyEqualsTheFirstExitAlone()
    {
        var correct = Profiles.CountCorrect(Path.Combine(Profiles.DigitsFolder, "early-exit", "stage1.onnx"), "exit1_logits");

        var grid = digits.Report.Variants.Single(v => v.Name == "early-exit").Thresholds;
        Assert.Equal(correct, grid.Single(t => t.Threshold == 0).Correct);
    }

    [Fact]
    public void Profile_Digits_EarlyExitAccuracyIsTheGridPointAtItsOwnThreshold()
    {
        var variant = digits.Report.Variants.Single(v => v.Name == "early-exit");

        Assert.Equal(variant.Thresholds.Single(t => t.Threshold == 0.9).Correct, variant.Accuracy!.Correct);
    }

    [Fact]
    public void Profile_Digits_KeepsHeaderCommentsAndEveryOtherLine()
    {
        var header = digits.Original.Split('\n').TakeWhile(l => l.StartsWith('#')).ToList();

        Assert.NotEmpty(header);
        Assert.Equal(header, digits.Written.Split('\n').Take(header.Count));
        Assert.Equal(digits.Original, Profiles.WithoutProfiles(digits.Written));
        Assert.Equal(2, digits.Written.Split('\n').Count(l => l.Trim() == "profile:"));
    }

    [Fact]
    public void Profile_Digits_WritesTimesPlainWithAtMostFourSignificantDigits()
    {
        var times = digits.Written.Split('\n')
            .Where(l => l.Contains("p50_ms:", StringComparison.Ordinal) || l.Contains("mean_latency_ms:", StringComparison.Ordinal))
            .SelectMany(l => l.Trim().TrimStart('-').Trim().Trim('{', '}').Split(','))
            .Select(cell => cell.Split(':'))
            .Where(kv => kv[0].Trim() is "p50_ms" or "p95_ms" or "items_per_second" or "mean_latency_ms")
            .Select(kv => kv[1].Trim())
            .ToList();

        Assert.Equal((12 * 3) + 11, times.Count);
        Assert.All(times, text =>
        {
            Assert.Matches(@"^[0-9]+(\.[0-9]+)?$", text);
            Assert.InRange(text.Replace(".", "", StringComparison.Ordinal).TrimStart('0').TrimEnd('0').Length, 1, 4);
        });
    }

    [Fact]
    public void Profile_AgainOnAProfiledManifest_ReplacesTheProfilesInPlace()
    {
        using var zoo = new ZooCopy(Profiles.DigitsFolder);
        File.WriteAllText(zoo.Manifest("digits"), digits.Written);
        var nextDay = new ZooProfiler(new FixedClock(Profiles.MeasuredAt.AddDays(1)));

        nextDay.Profile(new ProfileRequest(zoo.Path, "digits") { Variants = ["fp32"], BatchSizes = [1, 4], Measurement = Profiles.Quick }, cancellationToken: TestContext.Current.CancellationToken);

        var text = File.ReadAllText(zoo.Manifest("digits"));
        var model = new ZooLoader(new OnnxGraphReader()).LoadModel(Path.Combine(zoo.Path, "digits"));
        Assert.Equal(digits.Original, Profiles.WithoutProfiles(text));
        Assert.Equal("2026-11-26T18:00:00Z", model.FindVariant("fp32")!.Profile!.MeasuredAt);
        Assert.Equal([1, 4], model.FindVariant("fp32")!.Profile!.Latency.Select(l => l.BatchSize));
        Assert.Equal(Profiles.MeasuredAtText, model.FindVariant("early-exit")!.Profile!.MeasuredAt);
        Assert.True(text.IndexOf("profile:", StringComparison.Ordinal) < text.IndexOf("- name: early-exit", StringComparison.Ordinal));
    }
}
