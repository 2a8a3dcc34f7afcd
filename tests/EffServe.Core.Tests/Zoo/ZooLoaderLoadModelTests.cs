using System.Text.RegularExpressions;
using EffServe.Core.Tensors;
using EffServe.Core.Tests.Support;
using EffServe.Core.Zoo;

namespace EffServe.Core.Tests.Zoo;

/// <summary>Loading valid manifests: the real digits model and small variations of it.</summary>
public sealed partial class ZooLoaderLoadModelTests : IDisposable
{
    private readonly DigitsModelCopy _model = new();
    private readonly FakeGraphReader _graphs = new();

    public void Dispose() => _model.Dispose();

    [Fact]
    public void LoadModel_RealDigitsManifest_LoadsEvaluationSet()
    {
        var model = Load();

        Assert.NotNull(model.Evaluation);
        var image = Assert.Single(model.Evaluation.InputFiles);
        Assert.Equal("image", image.Key);
        Assert.Equal(_model.PathOf("eval/images.npy"), image.Value);
        Assert.Equal(_model.PathOf("eval/labels.npy"), model.Evaluation.LabelsFile);
    }

    [Fact]
    public void LoadModel_RealDigitsFolderInPlace_Loads()
    {
        // The committed folder holds every variant `make zoo` made: read their graphs for real.
        var model = new ZooLoader(new EffServe.Onnx.OnnxGraphReader()).LoadModel(RepoPaths.Digits);

        Assert.Equal("digits", model.Name);
        Assert.NotNull(model.Evaluation);
    }

    [Fact]
    public void LoadModel_RealDigitsManifest_ReadsIdentityAndTensors()
    {
        var model = Load();

        Assert.Equal("digits", model.Name);
        Assert.Equal("1", model.Version);
        Assert.Equal("image-classification", model.Task);
        Assert.StartsWith("Three-exit CNN on 8x8 handwritten digits", model.Description, StringComparison.Ordinal);
        Assert.Equal(_model.ModelDirectory, model.Directory);
        Assert.Equal(64, model.MaxBatchSize);
        Assert.True(model.HasBatchDimension);

        var input = Assert.Single(model.Inputs);
        AssertSpec(input, "image", DataType.Fp32, -1, 1, 8, 8);
        var output = Assert.Single(model.Outputs);
        AssertSpec(output, "logits", DataType.Fp32, -1, 10);
        Assert.Equal(["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"], model.Labels);
    }

    [Fact]
    public void LoadModel_RealDigitsManifest_ReadsBothVariants()
    {
        var model = Load();

        Assert.Equal("fp32", model.DefaultVariant);
        Assert.Equal(["fp32", "early-exit"], model.Variants.Select(v => v.Name));

        var fp32 = model.Variants[0];
        Assert.Equal(VariantKind.Fp32, fp32.Kind);
        Assert.Equal(ExecutionProvider.Cpu, fp32.Provider);
        Assert.Equal(1.0, fp32.ExitThreshold);
        Assert.Null(fp32.Profile);
        var file = Assert.Single(fp32.Stages);
        Assert.Equal(_model.PathOf("fp32/digits.onnx"), file.Path);
        Assert.Equal("fp32/digits.onnx", file.RelativePath);
        Assert.Null(file.ExitOutput);

        var earlyExit = model.Variants[1];
        Assert.Equal(VariantKind.EarlyExit, earlyExit.Kind);
        Assert.Equal(ExecutionProvider.Cpu, earlyExit.Provider);
        Assert.Equal(0.9, earlyExit.ExitThreshold);
        Assert.Equal(3, earlyExit.Stages.Count);
        Assert.Equal(["exit1_logits", "exit2_logits", "logits"], earlyExit.Stages.Select(s => s.ExitOutput));
        Assert.Equal(
            ["early-exit/stage1.onnx", "early-exit/stage2.onnx", "early-exit/stage3.onnx"],
            earlyExit.Stages.Select(s => s.RelativePath));
        Assert.All(earlyExit.Stages, s => Assert.Equal(_model.PathOf(s.RelativePath), s.Path));

        Assert.Same(earlyExit, model.FindVariant("early-exit"));
        Assert.Null(model.FindVariant("int8"));
    }

    [Fact]
    public void LoadModel_RealDigitsManifest_ReadsEveryGraphOnce()
    {
        Load();

        Assert.Equal(
            ["fp32/digits.onnx", "early-exit/stage1.onnx", "early-exit/stage2.onnx", "early-exit/stage3.onnx"],
            _graphs.Reads.Select(p => Path.GetRelativePath(_model.ModelDirectory, p).Replace('\\', '/')));
    }

    [Fact]
    public void LoadModel_Revision_IsSixteenLowercaseHexCharacters()
    {
        var model = Load();

        Assert.Matches(HexRevision(), model.Revision);
    }

    [Fact]
    public void LoadModel_ReloadedUnchanged_KeepsItsRevision()
    {
        var first = Load();
        var second = Load();

        Assert.Equal(first.Revision, second.Revision);
    }

    [Fact]
    public void LoadModel_SameContentInAnotherFolder_HasTheSameRevision()
    {
        _model.Edit("name: digits\n", "");
        var copy = _model.AddModelCopy("elsewhere");

        var here = Load();
        var there = new ZooLoader(_graphs).LoadModel(copy);

        Assert.Equal(here.Revision, there.Revision);
    }

    [Theory]
    [InlineData("fp32/digits.onnx")]
    [InlineData("early-exit/stage3.onnx")]
    [InlineData("labels.txt")]
    public void LoadModel_FileBytesChanged_ChangesTheRevision(string file)
    {
        var before = Load().Revision;

        var bytes = File.ReadAllBytes(_model.PathOf(file));
        bytes[^1] ^= 0x01;
        File.WriteAllBytes(_model.PathOf(file), bytes);
        var after = Load().Revision;

        Assert.NotEqual(before, after);
        Assert.Matches(HexRevision(), after);
    }

    [Fact]
    public void LoadModel_ManifestTextChanged_ChangesTheRevision()
    {
        var before = Load().Revision;

        _model.Edit("pixels scaled to [0, 1]", "pixels scaled to [0, 1], retrained");
        var after = Load().Revision;

        Assert.NotEqual(before, after);
    }

    [Fact]
    public void LoadModel_NoExitThreshold_UsesTheDefault()
    {
        _model.Edit("    exit_threshold: 0.9\n", "");

        var model = Load();

        Assert.Equal(ZooLoader.DefaultExitThreshold, model.FindVariant("early-exit")!.ExitThreshold);
    }

    [Theory]
    [InlineData("0", 0.0)]
    [InlineData("0.75", 0.75)]
    [InlineData("1", 1.0)]
    public void LoadModel_ExitThresholdInRange_IsKept(string text, double expected)
    {
        _model.Edit("exit_threshold: 0.9", "exit_threshold: " + text);

        var model = Load();

        Assert.Equal(expected, model.FindVariant("early-exit")!.ExitThreshold);
    }

    [Fact]
    public void LoadModel_NoDefaultVariant_DefaultsToTheFirstVariant()
    {
        _model.Edit("default_variant: fp32\n", "");

        var model = Load();

        Assert.Equal("fp32", model.DefaultVariant);
    }

    [Fact]
    public void LoadModel_DefaultVariantSecond_IsKept()
    {
        _model.Edit("default_variant: fp32", "default_variant: early-exit");

        var model = Load();

        Assert.Equal("early-exit", model.DefaultVariant);
    }

    [Fact]
    public void LoadModel_NoNameOrVersion_TakesTheFolderNameAndVersion1()
    {
        _model.Edit("name: digits\nversion: \"1\"\n", "");

        var model = Load();

        Assert.Equal("digits", model.Name);
        Assert.Equal("1", model.Version);
    }

    [Fact]
    public void LoadModel_InlineLabels_AreUsedInOrder()
    {
        _model.Edit("labels_file: labels.txt", "labels: [zero, one, two, three, four, five, six, seven, eight, nine]");

        var model = Load();

        Assert.Equal(10, model.Labels.Count);
        Assert.Equal("zero", model.Labels[0]);
        Assert.Equal("nine", model.Labels[9]);
    }

    [Fact]
    public void LoadModel_ProvidersAndProfile_AreRead()
    {
        _model.Edit(
            "    kind: fp32\n    provider: cpu\n",
            """
                kind: fp32
                provider: cuda
                profile:
                  measured_at: "2025-11-25T18:44:00Z"
                  machine: test-box
                  accuracy: 0.985
                  latency:
                    - batch_size: 1
                      p50_ms: 0.5
                      p95_ms: 0.75
                      items_per_second: 1800
                  thresholds:
                    - threshold: 0.9
                      accuracy: 0.98
                      mean_stages: 1.4
                      mean_latency_ms: 0.3

            """);
        _model.Edit("    kind: early-exit\n    provider: cpu\n", "    kind: early-exit\n    provider: tensorrt\n");

        var model = Load();

        var fp32 = model.FindVariant("fp32")!;
        Assert.Equal(ExecutionProvider.Cuda, fp32.Provider);
        Assert.Equal(ExecutionProvider.TensorRt, model.FindVariant("early-exit")!.Provider);
        Assert.NotNull(fp32.Profile);
        Assert.Equal("2025-11-25T18:44:00Z", fp32.Profile.MeasuredAt);
        Assert.Equal("test-box", fp32.Profile.Machine);
        Assert.Equal(0.985, fp32.Profile.Accuracy);
        Assert.Equal(new LatencyPoint(1, 0.5, 0.75, 1800), Assert.Single(fp32.Profile.Latency));
        Assert.Equal(new ThresholdPoint(0.9, 0.98, 1.4, 0.3), Assert.Single(fp32.Profile.Thresholds));
    }

    [Fact]
    public void LoadModel_GraphWithSymbolicDimensions_IsAccepted()
    {
        var fp32 = _graphs["fp32/digits.onnx"];
        _graphs.Set("fp32/digits.onnx", fp32 with { Inputs = [FakeGraphReader.Fp32("image", -1, 1, -1, -1)] });

        var model = Load();

        Assert.Equal(2, model.Variants.Count);
    }

    [Fact]
    public void LoadModel_LinkToAFileInsideTheFolder_IsAccepted()
    {
        Assert.SkipWhen(OperatingSystem.IsWindows(), "Creating symbolic links needs privileges on Windows.");
        File.CreateSymbolicLink(_model.PathOf("fp32/alias.onnx"), "digits.onnx");
        _graphs.Set("fp32/alias.onnx", _graphs["fp32/digits.onnx"]);
        _model.Edit("file: fp32/digits.onnx", "file: fp32/alias.onnx");

        var model = Load();

        Assert.Equal(_model.PathOf("fp32/alias.onnx"), model.FindVariant("fp32")!.Stages[0].Path);
    }

    private ModelDefinition Load() => new ZooLoader(_graphs).LoadModel(_model.ModelDirectory);

    private static void AssertSpec(TensorSpec spec, string name, DataType type, params long[] shape)
    {
        Assert.Equal(name, spec.Name);
        Assert.Equal(type, spec.DataType);
        Assert.Equal(shape, spec.Shape);
    }

    [GeneratedRegex("^[0-9a-f]{16}$")]
    private static partial Regex HexRevision();
}
