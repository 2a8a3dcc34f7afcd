using EffServe.Core.Tensors;
using EffServe.Core.Tests.Support;
using EffServe.Core.Zoo;

namespace EffServe.Core.Tests.Zoo;

/// <summary>Manifests that disagree with the ONNX graphs they name, and malformed early-exit variants.</summary>
public sealed class ZooLoaderGraphProblemTests : IDisposable
{
    private const string Fp32File = "variants[0] (fp32).file";
    private const string EarlyExit = "variants[1] (early-exit)";

    private readonly DigitsModelCopy _model = new();
    private readonly FakeGraphReader _graphs = new();

    public void Dispose() => _model.Dispose();

    [Fact]
    public void LoadModel_GraphInputDatatypeDiffers_ReportsBothDatatypes()
    {
        ChangeFp32Graph(g => g with { Inputs = [new TensorSpec("image", DataType.Fp16, [-1, 1, 8, 8])] });

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, Fp32File, "input 'image' is FP16 in the graph but FP32 in the manifest.");
    }

    [Fact]
    public void LoadModel_GraphOutputDatatypeDiffers_ReportsBothDatatypes()
    {
        ChangeFp32Graph(g => g with { Outputs = [new TensorSpec("logits", DataType.Fp64, [-1, 10]), .. g.Outputs.Skip(1)] });

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, Fp32File, "output 'logits' is FP64 in the graph but FP32 in the manifest.");
    }

    [Fact]
    public void LoadModel_ManifestDatatypeDiffersFromGraphs_ReportsEveryGraph()
    {
        _model.Edit("    datatype: FP32\n    shape: [-1, 1, 8, 8]", "    datatype: FP16\n    shape: [-1, 1, 8, 8]");

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, Fp32File, "input 'image' is FP32 in the graph but FP16 in the manifest.");
        ProblemAssert.Has(e, _model.ManifestPath, EarlyExit + ".stages[0].file", "input 'image' is FP32 in the graph but FP16 in the manifest.");
    }

    [Fact]
    public void LoadModel_GraphInputRankDiffers_ReportsBothShapesAndRanks()
    {
        ChangeFp32Graph(g => g with { Inputs = [FakeGraphReader.Fp32("image", -1, 64)] });

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, Fp32File, "input 'image' has shape [-1, 64] in the graph but [-1, 1, 8, 8] in the manifest (rank 2 vs 4).");
    }

    [Fact]
    public void LoadModel_GraphFixedDimensionDiffers_ReportsTheDimension()
    {
        ChangeFp32Graph(g => g with { Outputs = [FakeGraphReader.Fp32("logits", -1, 12), .. g.Outputs.Skip(1)] });

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, Fp32File, "output 'logits' has shape [-1, 12] in the graph but [-1, 10] in the manifest (dimension 1).");
    }

    [Fact]
    public void LoadModel_GraphFixesADimensionTheManifestLeavesVariable_ReportsIt()
    {
        ChangeFp32Graph(g => g with { Inputs = [FakeGraphReader.Fp32("image", 1, 1, 8, 8)] });

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, Fp32File, "input 'image' has shape [1, 1, 8, 8] in the graph but [-1, 1, 8, 8] in the manifest (dimension 0).");
    }

    [Fact]
    public void LoadModel_ManifestInputTheGraphLacks_ReportsTheMissingInput()
    {
        _model.Edit(
            "    shape: [-1, 1, 8, 8]\n",
            "    shape: [-1, 1, 8, 8]\n  - name: mask\n    datatype: BOOL\n    shape: [-1, 8, 8]\n");

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, Fp32File, "the graph has no input 'mask' (graph inputs: image).");
        ProblemAssert.Has(e, _model.ManifestPath, EarlyExit + ".stages[0].file", "the graph has no input 'mask' (graph inputs: image).");
    }

    [Fact]
    public void LoadModel_GraphInputTheManifestLacks_ReportsTheUndeclaredInput()
    {
        ChangeFp32Graph(g => g with { Inputs = [.. g.Inputs, FakeGraphReader.Fp32("temperature", -1)] });

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, Fp32File, "graph input temperature (FP32 [-1]) is not declared in the manifest's inputs.");
    }

    [Fact]
    public void LoadModel_DeclaredOutputMissingFromGraph_ReportsTheOutputsThereAre()
    {
        ChangeFp32Graph(g => g with { Outputs = [.. g.Outputs.Skip(1)] });

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, Fp32File, "the graph has no output 'logits' (graph outputs: exit1_logits, exit2_logits).");
    }

    [Fact]
    public void LoadModel_ManifestOutputNamedDifferently_ReportsItMissingFromGraph()
    {
        _model.Edit("  - name: logits\n", "  - name: probabilities\n");

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, Fp32File, "the graph has no output 'probabilities' (graph outputs: logits, exit1_logits, exit2_logits).");
    }

    [Fact]
    public void LoadModel_CorruptOnnxFile_ReportsCannotBeRead()
    {
        File.WriteAllText(_model.PathOf("fp32/digits.onnx"), "not a model");
        _graphs.MarkCorrupt("fp32/digits.onnx");

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, Fp32File, "cannot be read as an ONNX model: protobuf parsing failed (fake).");
    }

    [Fact]
    public void LoadModel_CorruptStageFile_ReportsCannotBeReadAtTheStage()
    {
        _graphs.MarkCorrupt("early-exit/stage2.onnx");

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, EarlyExit + ".stages[1].file", "cannot be read as an ONNX model");
        ProblemAssert.HasNone(e, _model.ManifestPath, EarlyExit + ".stages[2]");
    }

    [Fact]
    public void LoadModel_EarlyExitWithOneStage_ReportsTwoStagesNeeded()
    {
        _model.Edit(
            "      - file: early-exit/stage2.onnx\n        exit: exit2_logits\n      - file: early-exit/stage3.onnx\n        exit: logits\n",
            "");

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, EarlyExit + ".stages", "needs at least two stages");
    }

    [Fact]
    public void LoadModel_EarlyExitWithoutStages_ReportsTwoStagesNeeded()
    {
        var manifest = _model.Manifest;
        _model.Manifest = manifest[..manifest.IndexOf("    stages:", StringComparison.Ordinal)];

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, EarlyExit + ".stages", "needs at least two stages");
    }

    [Fact]
    public void LoadModel_EarlyExitWithAFile_ReportsFileDoesNotBelong()
    {
        _model.Edit("    kind: early-exit\n", "    kind: early-exit\n    file: fp32/digits.onnx\n");

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, EarlyExit + ".file", "does not belong to an early-exit variant");
    }

    [Theory]
    [InlineData(0, "exit: exit1_logits", "exit3_logits", "early-exit/stage1.onnx", "exit1_logits, features1")]
    [InlineData(2, "exit: logits", "exit2_logits", "early-exit/stage3.onnx", "logits")]
    public void LoadModel_ExitNotAnOutputOfItsStage_ReportsTheStageOutputs(int stage, string line, string exit, string file, string outputs)
    {
        _model.Edit(line + "\n", $"exit: {exit}\n");

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, $"{EarlyExit}.stages[{stage}].exit", $"'{exit}' is not an output of {file} (its outputs: {outputs}).");
    }

    [Fact]
    public void LoadModel_ExitOutputNotShapedLikeTheModelOutput_ReportsBothShapes()
    {
        // features2 is an output of stage 2, but not [-1, 10] logits.
        _model.Edit("exit: exit2_logits\n", "exit: features2\n");

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, EarlyExit + ".stages[1].exit", "exit 'features2' has shape [-1, 32, 4, 4] in the graph but [-1, 10] in the manifest");
    }

    [Fact]
    public void LoadModel_StageWithoutExit_ReportsExitRequired()
    {
        _model.Edit("        exit: exit2_logits\n", "");

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, EarlyExit + ".stages[1].exit", "is required");
    }

    [Fact]
    public void LoadModel_ExitThatIsNotFp32_ReportsExitDatatype()
    {
        var stage1 = _graphs["early-exit/stage1.onnx"];
        _graphs.Set("early-exit/stage1.onnx", stage1 with { Outputs = [new TensorSpec("exit1_logits", DataType.Fp16, [-1, 10]), stage1.Outputs[1]] });

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, EarlyExit + ".stages[0].exit", "'exit1_logits' is FP16; exit logits must be FP32.");
    }

    [Fact]
    public void LoadModel_StagesOutOfOrder_ReportsInputsNotProducedByThePreviousStage()
    {
        _model.Edit(
            "      - file: early-exit/stage2.onnx\n        exit: exit2_logits\n      - file: early-exit/stage3.onnx\n        exit: logits\n",
            "      - file: early-exit/stage3.onnx\n        exit: logits\n      - file: early-exit/stage2.onnx\n        exit: exit2_logits\n");

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, EarlyExit + ".stages[1].file", "input 'features2' is not an output of the stage before it, stages[0] (its outputs: exit1_logits, features1).");
        ProblemAssert.Has(e, _model.ManifestPath, EarlyExit + ".stages[2].file", "input 'features1' is not an output of the stage before it, stages[1] (its outputs: logits).");
    }

    [Fact]
    public void LoadModel_StageInputOfOtherDatatypeThanPreviousOutput_ReportsTheMismatch()
    {
        _graphs.Set("early-exit/stage2.onnx", _graphs["early-exit/stage2.onnx"] with { Inputs = [new TensorSpec("features1", DataType.Fp16, [-1, 16, 8, 8])] });

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, EarlyExit + ".stages[1].file", "input features1 (FP16 [-1, 16, 8, 8]) does not match output features1 (FP32 [-1, 16, 8, 8]) of the stage before it (stages[0]).");
    }

    [Fact]
    public void LoadModel_StageInputOfOtherRankThanPreviousOutput_ReportsTheMismatch()
    {
        _graphs.Set("early-exit/stage2.onnx", _graphs["early-exit/stage2.onnx"] with { Inputs = [FakeGraphReader.Fp32("features1", -1, 1024)] });

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, EarlyExit + ".stages[1].file", "input features1 (FP32 [-1, 1024]) does not match output features1");
    }

    [Fact]
    public void LoadModel_StageInputWithOtherFixedDimensionThanPreviousOutput_ReportsTheMismatch()
    {
        _graphs.Set("early-exit/stage2.onnx", _graphs["early-exit/stage2.onnx"] with { Inputs = [FakeGraphReader.Fp32("features1", -1, 8, 8, 8)] });

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, EarlyExit + ".stages[1].file", "features1");
    }

    [Fact]
    public void LoadModel_StageWithoutVariableBatchDimension_ReportsTheTensor()
    {
        var stage3 = _graphs["early-exit/stage3.onnx"];
        _graphs.Set("early-exit/stage3.onnx", stage3 with { Inputs = [FakeGraphReader.Fp32("features2", 1, 32, 4, 4)] });

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, EarlyExit + ".stages[2].file", "tensor features2 (FP32 [1, 32, 4, 4]) has no variable batch dimension first");
    }

    [Theory]
    [InlineData("1.5", "1.5")]
    [InlineData("-0.1", "-0.1")]
    [InlineData("100", "100")]
    [InlineData(".nan", "NaN")]
    public void LoadModel_ExitThresholdOutsideUnitRange_ReportsIt(string text, string shown)
    {
        _model.Edit("exit_threshold: 0.9", "exit_threshold: " + text);

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, EarlyExit + ".exit_threshold", $"is {shown}; it must lie in [0, 1]");
    }

    [Fact]
    public void LoadModel_StagesOnASingleFileVariant_ReportsStagesBelongToEarlyExit()
    {
        _model.Edit(
            "    file: fp32/digits.onnx\n",
            "    file: fp32/digits.onnx\n    stages:\n      - file: early-exit/stage1.onnx\n        exit: exit1_logits\n");

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, "variants[0] (fp32).stages", "belongs to early-exit variants; a fp32 variant names one file.");
    }

    [Fact]
    public void LoadModel_ExitThresholdOnASingleFileVariant_ReportsItBelongsToEarlyExit()
    {
        _model.Edit("    file: fp32/digits.onnx\n", "    file: fp32/digits.onnx\n    exit_threshold: 0.5\n");

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, "variants[0] (fp32).exit_threshold", "belongs to early-exit variants.");
    }

    [Fact]
    public void LoadModel_SingleFileVariantWithoutFile_ReportsFileRequired()
    {
        _model.Edit("    file: fp32/digits.onnx\n", "");

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, Fp32File, "is required.");
    }

    [Fact]
    public void LoadModel_EarlyExitWithoutBatchDimension_ReportsBatchNeeded()
    {
        _model.Edit("max_batch_size: 64\n", "max_batch_size: 0\n");
        _model.Edit("shape: [-1, 1, 8, 8]", "shape: [1, 1, 8, 8]");
        _model.Edit("shape: [-1, 10]", "shape: [1, 10]");

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, EarlyExit, "early exit needs a batch dimension (max_batch_size > 0)");
    }

    private void ChangeFp32Graph(Func<GraphSignature, GraphSignature> change) =>
        _graphs.Set("fp32/digits.onnx", change(_graphs["fp32/digits.onnx"]));

    private ZooValidationException LoadFails() => ProblemAssert.LoadFails(_model, _graphs);
}
