using System.Text.Json;
using EffServe.Cli;
using EffServe.Core.Tensors;
using EffServe.Core.Zoo;
using EffServe.Zoo.Manifest;
using EffServe.Zoo.Onnx;
using EffServe.Zoo.Tests.Support;

namespace EffServe.Zoo.Tests;

/// <summary>The `effserve zoo` commands end to end on temporary zoos: results, --json, exit codes, and nothing half-written.</summary>
public sealed class ZooCommandTests
{
    [Fact]
    public async Task Import_Digits_ManifestFromTheGraphThatLoads()
    {
        using var zoo = new TempFolder();

        var result = await ZooCli.RunAsync("zoo", "import", "zoo/digits/fp32/digits.onnx", "--zoo", zoo.Path, "--labels", "zoo/digits/labels.txt",
            "--eval-inputs", "image=zoo/digits/eval/images.npy", "--eval-labels", "zoo/digits/eval/labels.npy", "--outputs", "logits", "--json");

        Assert.Equal(ExitCodes.Success, result.ExitCode);
        using var json = JsonDocument.Parse(result.Stdout);
        Assert.Equal("digits", json.RootElement.GetProperty("model").GetString());
        Assert.Equal(64, json.RootElement.GetProperty("maxBatchSize").GetInt32());
        Assert.Equal(540, json.RootElement.GetProperty("evaluationSamples").GetInt32());
        var model = ZooModel.Load(zoo.Combine("digits"));
        var input = Assert.Single(model.Inputs);
        Assert.Equal(new TensorSpec("image", DataType.Fp32, [-1, 1, 8, 8]).ToString(), input.ToString());
        Assert.Equal("logits", Assert.Single(model.Outputs).Name);
        Assert.Equal(10, model.Labels.Count);
        Assert.Equal(["fp32/digits.onnx"], model.Variants.Select(v => v.Stages[0].RelativePath));
        Assert.Equal(["digits"], Directory.EnumerateFileSystemEntries(zoo.Path).Select(Path.GetFileName));
    }

    [Fact]
    public async Task Import_AllOutputs_SymbolicDimensionsAreMinusOne()
    {
        using var zoo = new TempFolder();

        var result = await ZooCli.RunAsync("zoo", "import", "zoo/digits/fp32/digits.onnx", "--zoo", zoo.Path, "--name", "multi");

        Assert.Equal(ExitCodes.Success, result.ExitCode);
        var model = ZooModel.Load(zoo.Combine("multi"));
        Assert.Equal(["logits", "exit1_logits", "exit2_logits"], model.Outputs.Select(o => o.Name));
        Assert.All(model.Outputs, o => Assert.Equal([-1L, 10L], o.Shape));
        Assert.Null(model.Evaluation);
    }

    [Fact]
    public async Task Import_NotAnOnnxFile_InvalidInputAndNothingWritten()
    {
        using var zoo = new TempFolder();

        var result = await ZooCli.RunAsync("zoo", "import", "zoo/digits/model.yaml", "--zoo", zoo.Path, "--json");

        Assert.Equal(ExitCodes.InvalidInput, result.ExitCode);
        Assert.Contains("is not an ONNX model", result.Stderr, StringComparison.Ordinal);
        using var json = JsonDocument.Parse(result.Stdout);
        Assert.Equal(ExitCodes.InvalidInput, json.RootElement.GetProperty("error").GetProperty("exitCode").GetInt32());
        Assert.Empty(zoo.Listing());
    }

    [Fact]
    public async Task Import_EvaluationDataOfTheWrongShape_InvalidInputAndNothingWritten()
    {
        using var zoo = new TempFolder();
        WriteNpy(zoo.Combine("wrong.npy"), new NpyArray(DataType.Fp32, [5, 8, 8], new byte[5 * 64 * 4]));
        var before = zoo.Listing();

        var result = await ZooCli.RunAsync("zoo", "import", "zoo/digits/fp32/digits.onnx", "--zoo", zoo.Path,
            "--eval-inputs", $"image={zoo.Combine("wrong.npy")}", "--eval-labels", "zoo/digits/eval/labels.npy");

        Assert.Equal(ExitCodes.InvalidInput, result.ExitCode);
        Assert.Contains("[5, 8, 8]", result.Stderr, StringComparison.Ordinal);
        Assert.Equal(before, zoo.Listing());
    }

    [Fact]
    public async Task Import_ExistingModel_UsageUnlessForced()
    {
        using var zoo = new TempFolder();
        Assert.Equal(0, (await ZooCli.RunAsync("zoo", "import", "zoo/digits/fp32/digits.onnx", "--zoo", zoo.Path)).ExitCode);

        var again = await ZooCli.RunAsync("zoo", "import", "zoo/digits/fp32/digits.onnx", "--zoo", zoo.Path);
        var forced = await ZooCli.RunAsync("zoo", "import", "zoo/digits/fp32/digits.onnx", "--zoo", zoo.Path, "--force", "--outputs", "logits");

        Assert.Equal(ExitCodes.Usage, again.ExitCode);
        Assert.Contains("--force", again.Stderr, StringComparison.Ordinal);
        Assert.Equal(ExitCodes.Success, forced.ExitCode);
        Assert.Single(ZooModel.Load(zoo.Combine("digits")).Outputs);
    }

    [Fact]
    public async Task Import_ForceOverAModelWithOtherVariants_RefusedNamingThemUnlessDropped()
    {
        using var zoo = new TempFolder();
        Assert.Equal(0, (await ZooCli.RunAsync("zoo", "import", "zoo/digits/fp32/digits.onnx", "--zoo", zoo.Path, "--outputs", "logits")).ExitCode);
        Assert.Equal(0, (await ZooCli.RunAsync("zoo", "fp16", "--zoo", zoo.Path, "-m", "digits")).ExitCode);
        var variants = ZooModel.Load(zoo.Combine("digits")).Variants.Select(v => v.Name).ToList();
        Assert.True(variants.Count > 1, string.Join(", ", variants));

        var forced = await ZooCli.RunAsync("zoo", "import", "zoo/digits/fp32/digits.onnx", "--zoo", zoo.Path, "--force", "--outputs", "logits");

        Assert.Equal(ExitCodes.Usage, forced.ExitCode);
        Assert.Contains("--drop-variants", forced.Stderr, StringComparison.Ordinal);
        Assert.Contains(variants.First(v => v != "fp32"), forced.Stderr, StringComparison.Ordinal);
        Assert.Equal(variants, ZooModel.Load(zoo.Combine("digits")).Variants.Select(v => v.Name)); // nothing lost

        var dropped = await ZooCli.RunAsync("zoo", "import", "zoo/digits/fp32/digits.onnx", "--zoo", zoo.Path, "--force", "--drop-variants", "--outputs", "logits", "--json");

        Assert.Equal(ExitCodes.Success, dropped.ExitCode);
        using var json = JsonDocument.Parse(dropped.Stdout);
        Assert.Equal(variants.Where(v => v != "fp32"), json.RootElement.GetProperty("droppedVariants").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal(["fp32"], ZooModel.Load(zoo.Combine("digits")).Variants.Select(v => v.Name));
    }

    [Fact]
    public async Task Quantize_Digits_Int8VariantWithIntegerKernelsAndAccuracy()
    {
        using var zoo = DigitsZoo();

        var result = await ZooCli.RunAsync("zoo", "quantize", "--zoo", zoo.Path, "-m", "digits", "--method", "percentile", "--json");

        Assert.Equal(ExitCodes.Success, result.ExitCode);
        using var json = JsonDocument.Parse(result.Stdout);
        var root = json.RootElement;
        Assert.Equal(3, root.GetProperty("ortIntegerKernels").GetProperty("QLinearConv").GetInt32());
        Assert.Empty(root.GetProperty("ortFloatKernels").EnumerateObject());
        Assert.Equal(99.99, root.GetProperty("percentile").GetDouble());
        Assert.InRange(root.GetProperty("comparison").GetProperty("accuracyDeltaPoints").GetDouble(), -1, 1);
        var variant = ZooModel.Load(zoo.Combine("digits")).FindVariant("int8")!;
        Assert.Equal(VariantKind.Int8, variant.Kind);
        Assert.Equal(ExecutionProvider.Cpu, variant.Provider);
        Assert.Equal("int8/digits.onnx", variant.Stages[0].RelativePath);
        Assert.Contains("# the demo model", File.ReadAllText(zoo.Combine("digits", "model.yaml")), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Quantize_CalibrationDataOfTheWrongShapeOrType_InvalidInputAndNothingWritten()
    {
        using var zoo = DigitsZoo();
        WriteNpy(zoo.Combine("shape.npy"), new NpyArray(DataType.Fp32, [4, 1, 4, 4], new byte[4 * 16 * 4]));
        WriteNpy(zoo.Combine("type.npy"), new NpyArray(DataType.Int64, [4, 1, 8, 8], new byte[4 * 64 * 8]));
        var before = zoo.Listing();
        var manifest = File.ReadAllText(zoo.Combine("digits", "model.yaml"));

        var shape = await ZooCli.RunAsync("zoo", "quantize", "--zoo", zoo.Path, "-m", "digits", "--calibration", zoo.Combine("shape.npy"));
        var type = await ZooCli.RunAsync("zoo", "quantize", "--zoo", zoo.Path, "-m", "digits", "--calibration", zoo.Combine("type.npy"));

        Assert.Equal(ExitCodes.InvalidInput, shape.ExitCode);
        Assert.Contains("has shape [4, 1, 4, 4]; the model takes FP32 [samples, 1, 8, 8]", shape.Stderr, StringComparison.Ordinal);
        Assert.Equal(ExitCodes.InvalidInput, type.ExitCode);
        Assert.Contains("is INT64", type.Stderr, StringComparison.Ordinal);
        Assert.Equal(before, zoo.Listing());
        Assert.Equal(manifest, File.ReadAllText(zoo.Combine("digits", "model.yaml")));
    }

    [Fact]
    public async Task Quantize_UnsupportedOperator_NamedAndNothingWritten()
    {
        using var zoo = new TempFolder();
        var file = zoo.Combine("branchy.onnx");
        TinyModels.WithIf().Save(file);
        Assert.Equal(0, (await ZooCli.RunAsync("zoo", "import", file, "--zoo", zoo.Path)).ExitCode);
        var before = zoo.Listing();

        var result = await ZooCli.RunAsync("zoo", "quantize", "--zoo", zoo.Path, "-m", "branchy", "--calibration", "random");

        Assert.Equal(ExitCodes.InvalidInput, result.ExitCode);
        Assert.Contains("'choose' (If)", result.Stderr, StringComparison.Ordinal);
        Assert.Equal(before, zoo.Listing());
    }

    [Fact]
    public async Task Quantize_MissingModelVariantOrEvaluation_ExitCodesByCause()
    {
        using var zoo = DigitsZoo();

        var missingModel = await ZooCli.RunAsync("zoo", "quantize", "--zoo", zoo.Path, "-m", "nope");
        var missingVariant = await ZooCli.RunAsync("zoo", "quantize", "--zoo", zoo.Path, "-m", "digits", "--from", "fp64");
        var takenName = await ZooCli.RunAsync("zoo", "quantize", "--zoo", zoo.Path, "-m", "digits", "--name", "fp32");
        var badMethod = await ZooCli.RunAsync("zoo", "quantize", "--zoo", zoo.Path, "-m", "digits", "--method", "magic");

        Assert.Equal(ExitCodes.NotFound, missingModel.ExitCode);
        Assert.Contains("no model 'nope' (models: digits)", missingModel.Stderr, StringComparison.Ordinal);
        Assert.Equal(ExitCodes.Usage, missingVariant.ExitCode);
        Assert.Contains("no variant 'fp64'", missingVariant.Stderr, StringComparison.Ordinal);
        Assert.Equal(ExitCodes.Usage, takenName.ExitCode);
        Assert.Equal(ExitCodes.Usage, badMethod.ExitCode);
    }

    [Fact]
    public async Task Fp16_Digits_CudaVariantCheckedOnTheCpu()
    {
        using var zoo = DigitsZoo();

        var result = await ZooCli.RunAsync("zoo", "fp16", "--zoo", zoo.Path, "-m", "digits", "--json");

        Assert.Equal(ExitCodes.Success, result.ExitCode);
        using var json = JsonDocument.Parse(result.Stdout);
        Assert.Equal("cuda", json.RootElement.GetProperty("provider").GetString());
        Assert.True(json.RootElement.GetProperty("cpuComparison").GetProperty("topClassAgreement").GetDouble() >= 0.995);
        var variant = ZooModel.Load(zoo.Combine("digits")).FindVariant("fp16")!;
        Assert.Equal(VariantKind.Fp16, variant.Kind);
        Assert.Equal(ExecutionProvider.Cuda, variant.Provider);
        Assert.All(OnnxModel.Load(variant.Stages[0].Path).Graph.Initializer, t => Assert.Equal(ElementTypes.Float16, t.DataType));
    }

    [Fact]
    public async Task EarlyExit_Digits_StagesThatTheLoaderAccepts()
    {
        using var zoo = DigitsZoo();

        var result = await ZooCli.RunAsync("zoo", "early-exit", "--zoo", zoo.Path, "-m", "digits", "--name", "ee", "--threshold", "0.8",
            "--cut", "/block1/block1.1/Relu_output_0=features1,/block2/block2.2/MaxPool_output_0=features2",
            "--exits", "exit1_logits,exit2_logits,logits", "--json");

        Assert.Equal(ExitCodes.Success, result.ExitCode);
        using var json = JsonDocument.Parse(result.Stdout);
        Assert.All(json.RootElement.GetProperty("maxAbsDifference").EnumerateObject(), p => Assert.True(p.Value.GetDouble() <= 1e-5));
        var variant = ZooModel.Load(zoo.Combine("digits")).FindVariant("ee")!;
        Assert.Equal(VariantKind.EarlyExit, variant.Kind);
        Assert.Equal(0.8, variant.ExitThreshold);
        Assert.Equal(["exit1_logits", "exit2_logits", "logits"], variant.Stages.Select(s => s.ExitOutput));
        Assert.Equal(["ee/stage1.onnx", "ee/stage2.onnx", "ee/stage3.onnx"], variant.Stages.Select(s => s.RelativePath));
    }

    [Fact]
    public async Task EarlyExit_UnknownTensor_UsageAndNothingWritten()
    {
        using var zoo = DigitsZoo();
        var before = zoo.Listing();
        var manifest = File.ReadAllText(zoo.Combine("digits", "model.yaml"));

        var result = await ZooCli.RunAsync("zoo", "early-exit", "--zoo", zoo.Path, "-m", "digits", "--name", "ee", "--cut", "features1,features2");

        Assert.Equal(ExitCodes.Usage, result.ExitCode);
        Assert.Contains("cut 'features1' is not a tensor computed by the model", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("rename one with tensor=name", result.Stderr, StringComparison.Ordinal);
        Assert.Equal(before, zoo.Listing());
        Assert.Equal(manifest, File.ReadAllText(zoo.Combine("digits", "model.yaml")));
    }

    [Fact]
    public async Task EarlyExit_ModelWithoutExitOutputs_InvalidInputAndNothingWritten()
    {
        using var zoo = new TempFolder();
        Assert.Equal(0, (await ZooCli.RunAsync("zoo", "import", "tests/fixtures/zoo/add/add.onnx", "--zoo", zoo.Path)).ExitCode);
        var before = zoo.Listing();

        var result = await ZooCli.RunAsync("zoo", "early-exit", "--zoo", zoo.Path, "-m", "add", "--cut", "y", "--json");

        Assert.Equal(ExitCodes.InvalidInput, result.ExitCode);
        Assert.Contains("no exit outputs", result.Stderr, StringComparison.Ordinal);
        Assert.Equal(before, zoo.Listing());
    }

    [Fact]
    public async Task Synth_MobileNetV2_FlopsReportedAndModelLoads()
    {
        using var zoo = new TempFolder();

        var result = await ZooCli.RunAsync("zoo", "synth", "--zoo", zoo.Path, "--arch", "mobilenetv2", "--classes", "10", "--seed", "3", "--json");

        Assert.Equal(ExitCodes.Success, result.ExitCode);
        using var json = JsonDocument.Parse(result.Stdout);
        Assert.InRange(json.RootElement.GetProperty("flops").GetInt64(), 580_000_000, 620_000_000);
        var model = ZooModel.Load(zoo.Combine("mobilenetv2"));
        Assert.Equal([-1L, 3L, 224L, 224L], Assert.Single(model.Inputs).Shape);
        Assert.Equal([-1L, 10L], Assert.Single(model.Outputs).Shape);
    }

    [Fact]
    public async Task Synth_UnknownArchitecture_Usage()
    {
        using var zoo = new TempFolder();

        var result = await ZooCli.RunAsync("zoo", "synth", "--zoo", zoo.Path, "--arch", "vgg16");

        Assert.Equal(ExitCodes.Usage, result.ExitCode);
        Assert.Empty(zoo.Listing());
    }

    [Fact]
    public async Task Quantize_HumanOutput_SaysWhatOrtRuns()
    {
        using var zoo = DigitsZoo();

        var result = await ZooCli.RunAsync("zoo", "quantize", "--zoo", zoo.Path, "-m", "digits", "--samples", "100");

        Assert.Equal(ExitCodes.Success, result.ExitCode);
        Assert.Contains("ONNX Runtime runs: 3 QGemm, 1 QLinearAveragePool, 3 QLinearConv", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("on 100 samples (evaluation set, first 100)", result.Stdout, StringComparison.Ordinal);
    }

    /// <summary>A temporary zoo with a copy of the demo digits model, its manifest starting with a comment.</summary>
    private static TempFolder DigitsZoo()
    {
        var zoo = new TempFolder();
        var folder = zoo.Combine("digits");
        ZooCli.CopyFolder(TestPaths.DigitsFolder, folder);
        var manifest = "# the demo model, copied for a test\n" + File.ReadAllText(Path.Combine(folder, "model.yaml"));
        File.WriteAllText(Path.Combine(folder, "model.yaml"), manifest);
        return zoo;
    }

    private static void WriteNpy(string path, NpyArray array)
    {
        using var stream = File.Create(path);
        array.Write(stream);
    }
}
