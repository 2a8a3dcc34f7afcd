using EffServe.Core.Zoo;
using EffServe.Onnx;
using EffServe.Zoo.Profiling;

namespace EffServe.Zoo.Tests.Profiling;

/// <summary>
/// The fixture model `add` has no evaluation set, max_batch_size 16, and a variant that needs CUDA,
/// which this (CPU) build skips.
/// </summary>
public sealed class ZooProfilerNoEvaluationTests : IDisposable
{
    private readonly ZooCopy _zoo = new(Profiles.AddFolder);

    public void Dispose() => _zoo.Dispose();

    [Fact]
    public void Profile_ModelWithoutEvaluationSet_MeasuresLatencyButNoAccuracyAndSaysSo()
    {
        var report = Profile();

        var cpu = report.Variants.Single(v => v.Name == "cpu");
        Assert.True(cpu.Profiled);
        Assert.Null(cpu.Accuracy);
        Assert.Empty(cpu.Thresholds);
        Assert.Null(report.EvaluationSamples);
        Assert.Contains(report.Notes, n => n.StartsWith("The model has no evaluation set", StringComparison.Ordinal) && n.Contains("accuracy", StringComparison.Ordinal));

        var profile = Reload().FindVariant("cpu")!.Profile!;
        Assert.Null(profile.Accuracy);
        Assert.NotEmpty(profile.Latency);
        Assert.DoesNotContain("accuracy:", File.ReadAllText(_zoo.Manifest("add")), StringComparison.Ordinal);
    }

    [Fact]
    public void Profile_DefaultBatchSizes_StopAtMaxBatchSizeAndSaySo()
    {
        var report = Profile();

        Assert.Equal([1, 2, 4, 8, 16], report.Variants.Single(v => v.Name == "cpu").Latency.Select(l => l.BatchSize));
        Assert.Contains("Batch sizes above max_batch_size 16 are left out (32).", report.Notes);
    }

    [Fact]
    public void Profile_VariantWhoseProviderIsMissing_IsSkippedWithTheReasonAndKeepsNoProfile()
    {
        var report = Profile();

        var gpu = report.Variants.Single(v => v.Name == "gpu");
        Assert.False(gpu.Profiled);
        Assert.Contains("cuda", gpu.SkipReason, StringComparison.Ordinal);
        Assert.Null(Reload().FindVariant("gpu")!.Profile);
    }

    [Fact]
    public void Profile_OnlyVariantsThatCannotRunHere_FailsAndWritesNothing()
    {
        var before = File.ReadAllBytes(_zoo.Manifest("add"));

        var e = Assert.Throws<ZooToolException>(() => Profiles.Profiler().Profile(
            new ProfileRequest(_zoo.Path, "add") { Variants = ["gpu"], Measurement = Profiles.Quick },
            cancellationToken: TestContext.Current.CancellationToken));

        Assert.Equal(ZooToolError.InvalidArgument, e.Error);
        Assert.StartsWith("no variant asked for can run on this machine, so nothing was measured: gpu: ", e.Message, StringComparison.Ordinal);
        Assert.Equal(before, File.ReadAllBytes(_zoo.Manifest("add")));
    }

    [Fact]
    public void Profile_FlowStyleManifest_KeepsItsHeaderAndEveryOtherLine()
    {
        var original = File.ReadAllText(_zoo.Manifest("add"));

        Profile();

        var written = File.ReadAllText(_zoo.Manifest("add"));
        Assert.StartsWith("# Test fixture: y = x + 1", written, StringComparison.Ordinal);
        Assert.Equal(original, Profiles.WithoutProfiles(written));
    }

    [Fact]
    public void Profile_DryRun_MeasuresAndLeavesTheManifestAlone()
    {
        var before = File.ReadAllBytes(_zoo.Manifest("add"));

        var report = Profiles.Profiler().Profile(
            new ProfileRequest(_zoo.Path, "add") { WriteManifest = false, Measurement = Profiles.Quick },
            cancellationToken: TestContext.Current.CancellationToken);

        Assert.False(report.Written);
        Assert.NotEmpty(report.Variants.Single(v => v.Name == "cpu").Latency);
        Assert.Equal(before, File.ReadAllBytes(_zoo.Manifest("add")));
    }

    private ProfileReport Profile() => Profiles.Profiler().Profile(
        new ProfileRequest(_zoo.Path, "add") { Measurement = Profiles.Quick },
        cancellationToken: TestContext.Current.CancellationToken);

    private ModelDefinition Reload() => new ZooLoader(new OnnxGraphReader()).LoadModel(Path.Combine(_zoo.Path, "add"));
}
