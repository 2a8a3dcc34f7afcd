using EffServe.Core.Tensors;
using EffServe.Core.Tests.Support;
using EffServe.Core.Zoo;

namespace EffServe.Core.Tests.Zoo;

/// <summary>Class labels and the evaluation set, checked against the model's tensors.</summary>
public sealed class ZooLoaderEvaluationTests : IDisposable
{
    private readonly DigitsModelCopy _model = new();
    private readonly FakeGraphReader _graphs = new();

    public void Dispose() => _model.Dispose();

    [Fact]
    public void LoadModel_LabelsFileWithNineLabels_ReportsLabelAndClassCounts()
    {
        File.WriteAllLines(_model.PathOf("labels.txt"), Enumerable.Range(0, 9).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)));

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, "labels_file", "has 9 labels but output 'logits' has 10 classes.");
    }

    [Fact]
    public void LoadModel_InlineLabelsWithElevenLabels_ReportsLabelAndClassCounts()
    {
        _model.Edit("labels_file: labels.txt", "labels: [a, b, c, d, e, f, g, h, i, j, k]");

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, "labels", "has 11 labels but output 'logits' has 10 classes.");
    }

    [Fact]
    public void LoadModel_LabelsAndLabelsFileBothSet_ReportsUseOne()
    {
        _model.Edit("labels_file: labels.txt", "labels_file: labels.txt\nlabels: [a, b, c, d, e, f, g, h, i, j]");

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, "labels", "and labels_file are both set; use one.");
    }

    [Fact]
    public void LoadModel_LabelsFileWithBlankLinesAndSpaces_TrimsThem()
    {
        File.WriteAllText(_model.PathOf("labels.txt"), "\n  zero \n one\n\ntwo\nthree\nfour\nfive\nsix\nseven\neight\nnine\n\n");

        var model = new ZooLoader(_graphs).LoadModel(_model.ModelDirectory);

        Assert.Equal(10, model.Labels.Count);
        Assert.Equal("zero", model.Labels[0]);
        Assert.Equal("one", model.Labels[1]);
    }

    [Fact]
    public void LoadModel_EvaluationInputOfWrongDatatype_ReportsHeldAndExpected()
    {
        WriteNpy("eval/images.npy", "<f8", DataType.Fp64, 540, 1, 8, 8);

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, "evaluation.inputs.image", "holds FP64 [540, 1, 8, 8]; expected FP32 [samples, 1, 8, 8].");
    }

    [Fact]
    public void LoadModel_EvaluationInputOfWrongShape_ReportsHeldAndExpected()
    {
        WriteNpy("eval/images.npy", "<f4", DataType.Fp32, 540, 64);

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, "evaluation.inputs.image", "holds FP32 [540, 64]; expected FP32 [samples, 1, 8, 8].");
    }

    [Fact]
    public void LoadModel_EvaluationLabelsOfWrongDatatype_ReportsHeldAndExpected()
    {
        WriteNpy("eval/labels.npy", "<f4", DataType.Fp32, 540);

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, "evaluation.labels", "holds FP32 [540]; expected INT64 or INT32 [samples].");
    }

    [Fact]
    public void LoadModel_EvaluationLabelsOfWrongRank_ReportsHeldAndExpected()
    {
        WriteNpy("eval/labels.npy", "<i8", DataType.Int64, 540, 1);

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, "evaluation.labels", "holds INT64 [540, 1]; expected INT64 or INT32 [samples].");
    }

    [Fact]
    public void LoadModel_EvaluationLabelsWithWrongSampleCount_ReportsBothCounts()
    {
        WriteNpy("eval/labels.npy", "<i8", DataType.Int64, 539);

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, "evaluation.labels", "has 539 labels for 540 samples.");
    }

    [Fact]
    public void LoadModel_Int32EvaluationLabels_AreAccepted()
    {
        WriteNpy("eval/labels.npy", "<i4", DataType.Int32, 540);

        var model = new ZooLoader(_graphs).LoadModel(_model.ModelDirectory);

        Assert.Equal(_model.PathOf("eval/labels.npy"), model.Evaluation!.LabelsFile);
    }

    [Fact]
    public void LoadModel_EvaluationFileNotNpy_ReportsThePathAndTheReason()
    {
        File.WriteAllText(_model.PathOf("eval/images.npy"), "image data, honest");

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, "evaluation.inputs.image", _model.PathOf("eval/images.npy") + ": not a .npy file");
    }

    [Fact]
    public void LoadModel_EvaluationFileWithAnAbsurdShape_ReportsItInsteadOfCrashing()
    {
        File.WriteAllBytes(
            _model.PathOf("eval/images.npy"),
            NpyBytes.Version1(NpyBytes.Header("<f4", "(9223372036854775807, 2)"), new byte[8]));

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, "evaluation.inputs.image", _model.PathOf("eval/images.npy"));
    }

    [Fact]
    public void LoadModel_EvaluationFileMissing_ReportsFileDoesNotExist()
    {
        _model.Edit("image: eval/images.npy", "image: eval/missing.npy");

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, "evaluation.inputs.image", "'eval/missing.npy' does not exist.");
    }

    [Fact]
    public void LoadModel_EvaluationForAnUnknownInput_ReportsTheInputsThereAre()
    {
        _model.Edit("    image: eval/images.npy\n", "    image: eval/images.npy\n    mask: eval/images.npy\n");

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, "evaluation.inputs.mask", "names no model input (inputs: image).");
    }

    [Fact]
    public void LoadModel_EvaluationWithoutAFileForAnInput_ReportsTheInput()
    {
        _model.Edit("  inputs:\n    image: eval/images.npy\n", "  inputs: {}\n");

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, "evaluation.inputs", "has no file for input 'image'.");
    }

    [Fact]
    public void LoadModel_EvaluationWithoutLabels_ReportsLabelsRequired()
    {
        _model.Edit("  labels: eval/labels.npy\n", "");

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, "evaluation.labels", "is required");
    }

    private void WriteNpy(string relative, string descr, DataType type, params long[] shape) =>
        File.WriteAllBytes(
            _model.PathOf(relative),
            NpyBytes.Version1(NpyBytes.Header(descr, "(" + string.Join(", ", shape) + (shape.Length == 1 ? ",)" : ")")), NpyBytes.Pattern(type, shape)));

    private ZooValidationException LoadFails() => ProblemAssert.LoadFails(_model, _graphs);
}
