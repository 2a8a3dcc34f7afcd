using EffServe.Core.Tests.Support;
using EffServe.Core.Zoo;

namespace EffServe.Core.Tests.Zoo;

/// <summary>Files a manifest names must be relative, stay inside the model's folder, and exist.</summary>
public sealed class ZooLoaderPathTests : IDisposable
{
    private readonly DigitsModelCopy _model = new();
    private readonly FakeGraphReader _graphs = new();

    public void Dispose() => _model.Dispose();

    [Fact]
    public void LoadModel_VariantFileMissing_ReportsFileDoesNotExist()
    {
        _model.Edit("file: fp32/digits.onnx", "file: fp32/missing.onnx");

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, "variants[0] (fp32).file", "'fp32/missing.onnx' does not exist.");
    }

    [Fact]
    public void LoadModel_StageFileDeleted_ReportsStageFileDoesNotExist()
    {
        File.Delete(_model.PathOf("early-exit/stage2.onnx"));

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, "variants[1] (early-exit).stages[1].file", "'early-exit/stage2.onnx' does not exist.");
    }

    [Fact]
    public void LoadModel_LabelsFileMissing_ReportsFileDoesNotExist()
    {
        File.Delete(_model.PathOf("labels.txt"));

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, "labels_file", "'labels.txt' does not exist.");
    }

    [Theory]
    [InlineData("../x.onnx")]
    [InlineData("fp32/../../x.onnx")]
    [InlineData("../digits-other/x.onnx")]
    public void LoadModel_PathLeadingOutOfTheFolder_ReportsPointsOutside(string path)
    {
        // The target exists, so only its place can be the problem.
        Directory.CreateDirectory(Path.Combine(_model.ZooDirectory, "digits-other"));
        File.Copy(_model.PathOf("fp32/digits.onnx"), Path.Combine(_model.ZooDirectory, "x.onnx"));
        File.Copy(_model.PathOf("fp32/digits.onnx"), Path.Combine(_model.ZooDirectory, "digits-other", "x.onnx"));
        _model.Edit("file: fp32/digits.onnx", "file: " + path);

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, "variants[0] (fp32).file", $"'{path}' points outside the model's folder.");
        Assert.DoesNotContain(_graphs.Reads, r => r.EndsWith("/x.onnx", StringComparison.Ordinal));
    }

    [Fact]
    public void LoadModel_LabelsFileOutsideTheFolder_ReportsPointsOutside()
    {
        File.Copy(_model.PathOf("labels.txt"), Path.Combine(_model.ZooDirectory, "labels.txt"));
        _model.Edit("labels_file: labels.txt", "labels_file: ../labels.txt");

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, "labels_file", "'../labels.txt' points outside the model's folder.");
    }

    [Fact]
    public void LoadModel_EvaluationFileOutsideTheFolder_ReportsPointsOutside()
    {
        File.Copy(_model.PathOf("eval/labels.npy"), Path.Combine(_model.ZooDirectory, "labels.npy"));
        _model.Edit("labels: eval/labels.npy", "labels: ../labels.npy");

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, "evaluation.labels", "'../labels.npy' points outside the model's folder.");
    }

    [Fact]
    public void LoadModel_AbsolutePath_ReportsMustBeRelative()
    {
        // Absolute, and even inside the model's folder: still refused.
        var absolute = _model.PathOf("fp32/digits.onnx");
        _model.Edit("file: fp32/digits.onnx", "file: " + absolute);

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, "variants[0] (fp32).file", $"'{absolute}' must be a path relative to the model's folder.");
    }

    [Fact]
    public void LoadModel_AbsoluteStagePath_ReportsMustBeRelative()
    {
        var absolute = _model.PathOf("early-exit/stage1.onnx");
        _model.Edit("file: early-exit/stage1.onnx", "file: " + absolute);

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, "variants[1] (early-exit).stages[0].file", "must be a path relative to the model's folder.");
    }

    [Fact]
    public void LoadModel_EmptyPath_ReportsMustBeRelative()
    {
        _model.Edit("file: fp32/digits.onnx", "file: \"\"");

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, "variants[0] (fp32).file", "'' must be a path relative to the model's folder.");
    }

    [Fact]
    public void LoadModel_LinkInsideTheFolderToAFileOutside_ReportsTheLink()
    {
        Assert.SkipWhen(OperatingSystem.IsWindows(), "Creating symbolic links needs privileges on Windows.");
        var outside = Path.Combine(_model.ZooDirectory, "outside.onnx");
        File.Copy(_model.PathOf("fp32/digits.onnx"), outside);
        File.CreateSymbolicLink(_model.PathOf("fp32/linked.onnx"), outside);
        _graphs.Set("linked.onnx", _graphs["fp32/digits.onnx"]);
        _model.Edit("file: fp32/digits.onnx", "file: fp32/linked.onnx");

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, "variants[0] (fp32).file", "'fp32/linked.onnx' leads through the link", "outside.onnx", "outside the model's folder.");
        Assert.DoesNotContain(_graphs.Reads, r => r.EndsWith("linked.onnx", StringComparison.Ordinal));
    }

    [Fact]
    public void LoadModel_RelativeLinkLeadingOutOfTheFolder_ReportsTheLink()
    {
        Assert.SkipWhen(OperatingSystem.IsWindows(), "Creating symbolic links needs privileges on Windows.");
        File.Copy(_model.PathOf("early-exit/stage1.onnx"), Path.Combine(_model.ZooDirectory, "stage1.onnx"));
        File.Delete(_model.PathOf("early-exit/stage1.onnx"));
        File.CreateSymbolicLink(_model.PathOf("early-exit/stage1.onnx"), "../../stage1.onnx");

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, "variants[1] (early-exit).stages[0].file", "'early-exit/stage1.onnx' leads through the link", "outside the model's folder.");
    }

    [Fact]
    public void LoadModel_LinkedFolderInsideLeadingOutside_ReportsTheLink()
    {
        Assert.SkipWhen(OperatingSystem.IsWindows(), "Creating symbolic links needs privileges on Windows.");
        var elsewhere = Path.Combine(_model.ZooDirectory, "elsewhere");
        Directory.CreateDirectory(elsewhere);
        File.Copy(_model.PathOf("fp32/digits.onnx"), Path.Combine(elsewhere, "digits.onnx"));
        Directory.CreateSymbolicLink(_model.PathOf("shared"), elsewhere);
        _graphs.Set("shared/digits.onnx", _graphs["fp32/digits.onnx"]);
        _model.Edit("file: fp32/digits.onnx", "file: shared/digits.onnx");

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, "variants[0] (fp32).file", "outside the model's folder");
    }

    private ZooValidationException LoadFails() => ProblemAssert.LoadFails(_model, _graphs);
}
