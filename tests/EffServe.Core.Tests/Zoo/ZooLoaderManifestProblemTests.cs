using System.Text.RegularExpressions;
using EffServe.Core.Tests.Support;
using EffServe.Core.Zoo;

namespace EffServe.Core.Tests.Zoo;

/// <summary>Manifests that are wrong in themselves, before any ONNX file is compared.</summary>
public sealed class ZooLoaderManifestProblemTests : IDisposable
{
    private readonly DigitsModelCopy _model = new();
    private readonly FakeGraphReader _graphs = new();

    public void Dispose() => _model.Dispose();

    [Theory]
    [InlineData("fp64")]
    [InlineData("FP32")]
    [InlineData("early_exit")]
    public void LoadModel_UnknownKind_ReportsTheKindAndTheChoices(string kind)
    {
        _model.Edit("kind: fp32", "kind: " + kind);

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, "variants[0] (fp32).kind", $"'{kind}' is not a variant kind", "fp32, int8, fp16 or early-exit");
    }

    [Fact]
    public void LoadModel_MissingKind_ReportsIt()
    {
        _model.Edit("    kind: fp32\n", "");

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, "variants[0] (fp32).kind", "is not a variant kind");
    }

    [Theory]
    [InlineData("gpu")]
    [InlineData("CUDA")]
    [InlineData("directml")]
    public void LoadModel_UnknownProvider_ReportsTheProviderAndTheChoices(string provider)
    {
        _model.Edit("    kind: fp32\n    provider: cpu\n", $"    kind: fp32\n    provider: {provider}\n");

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, "variants[0] (fp32).provider", $"'{provider}' is not an execution provider", "cpu, cuda or tensorrt");
    }

    [Theory]
    [InlineData("FLOAT")]
    [InlineData("fp32")]
    [InlineData("FP8")]
    public void LoadModel_UnknownInputDatatype_ReportsTheDatatypeAndTheChoices(string datatype)
    {
        _model.Edit("    datatype: FP32\n    shape: [-1, 1, 8, 8]", $"    datatype: {datatype}\n    shape: [-1, 1, 8, 8]");

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, "inputs[0].datatype", $"'{datatype}' is not a datatype", "BOOL, UINT8", "BYTES");
    }

    [Fact]
    public void LoadModel_UnknownOutputDatatype_ReportsIt()
    {
        _model.Edit("    datatype: FP32\n    shape: [-1, 10]", "    datatype: FLOAT32\n    shape: [-1, 10]");

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, "outputs[0].datatype", "'FLOAT32' is not a datatype");
    }

    [Fact]
    public void LoadModel_DuplicateVariantNames_ReportsTheSecond()
    {
        _model.Edit("  - name: early-exit\n", "  - name: fp32\n");

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, "variants[1] (fp32).name", "'fp32' is used by two variants.");
        ProblemAssert.HasNone(e, _model.ManifestPath, "variants[0]");
    }

    [Fact]
    public void LoadModel_DuplicateInputNames_ReportsTheSecond()
    {
        _model.Edit(
            "    shape: [-1, 1, 8, 8]\n",
            "    shape: [-1, 1, 8, 8]\n  - name: image\n    datatype: FP32\n    shape: [-1, 1, 8, 8]\n");

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, "inputs[1].name", "'image' is used twice in inputs.");
    }

    [Fact]
    public void LoadModel_DuplicateOutputNames_ReportsTheSecond()
    {
        _model.Edit(
            "    shape: [-1, 10]\n",
            "    shape: [-1, 10]\n  - name: logits\n    datatype: FP32\n    shape: [-1, 10]\n");

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, "outputs[1].name", "'logits' is used twice in outputs.");
    }

    [Fact]
    public void LoadModel_TensorWithoutName_ReportsNameRequired()
    {
        _model.Edit("  - name: image\n    datatype: FP32", "  - datatype: FP32");

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, "inputs[0].name", "is required.");
    }

    [Theory]
    [InlineData("0")]
    [InlineData("-2")]
    [InlineData("-100")]
    public void LoadModel_ShapeDimensionZeroOrBelowMinusOne_ReportsTheDimension(string dim)
    {
        _model.Edit("shape: [-1, 1, 8, 8]", $"shape: [-1, 1, {dim}, 8]");

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, "inputs[0].shape[2]", $"is {dim}; a dimension is positive, or -1 when its size varies.");
    }

    [Fact]
    public void LoadModel_MissingShape_ReportsShapeRequired()
    {
        _model.Edit("    shape: [-1, 10]\n", "");

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, "outputs[0].shape", "is required");
    }

    [Theory]
    [InlineData("[64, 10]", "[64, 10]")]
    [InlineData("[1, 10]", "[1, 10]")]
    [InlineData("[10]", "[10]")]
    [InlineData("[]", "[]")]
    public void LoadModel_FirstDimensionNotVariableWithBatching_ReportsTheShape(string shape, string formatted)
    {
        _model.Edit("shape: [-1, 10]", "shape: " + shape);

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, "outputs[0].shape", $"is {formatted}; with max_batch_size > 0 the first dimension is the batch dimension and must be -1.");
    }

    [Fact]
    public void LoadModel_NegativeMaxBatchSize_ReportsIt()
    {
        _model.Edit("max_batch_size: 64", "max_batch_size: -4");

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, "max_batch_size", "is -4; it must be 0 (no batch dimension) or positive.");
    }

    [Fact]
    public void LoadModel_NameDiffersFromFolder_ReportsBothNames()
    {
        _model.Edit("name: digits\n", "name: mnist\n");

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, "name", "'mnist' differs from the model's folder name 'digits'; they must be equal.");
    }

    [Theory]
    [InlineData("version: \"1 beta\"")]
    [InlineData("version: .hidden")]
    [InlineData("version: \"\"")]
    public void LoadModel_VersionNotAnIdentifier_ReportsIt(string version)
    {
        _model.Edit("version: \"1\"", version);

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, "version", "may use only letters, digits, '-', '_' and '.'");
    }

    [Fact]
    public void LoadModel_MissingTask_ReportsTaskRequired()
    {
        _model.Edit("task: image-classification\n", "");

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, "task", "is required");
    }

    [Fact]
    public void LoadModel_DefaultVariantNamingNoVariant_ReportsTheVariantsThereAre()
    {
        _model.Edit("default_variant: fp32", "default_variant: int8");

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, "default_variant", "names 'int8', which is not a variant (variants: fp32, early-exit).");
    }

    [Fact]
    public void LoadModel_DefaultVariantNamingAnInvalidVariant_ReportsOnlyTheVariant()
    {
        _model.Edit("kind: fp32", "kind: fp64");

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, "variants[0] (fp32).kind", "'fp64' is not a variant kind");
        ProblemAssert.HasNone(e, _model.ManifestPath, "default_variant");
    }

    [Theory]
    [InlineData("")]
    [InlineData("# only a comment\n")]
    [InlineData("---\n")]
    public void LoadModel_EmptyManifest_ReportsManifestIsEmpty(string text)
    {
        _model.Manifest = text;

        var e = LoadFails();

        Assert.Equal($"{_model.ManifestPath}: the manifest is empty.", Assert.Single(e.Problems));
    }

    [Fact]
    public void LoadModel_NoManifest_ReportsManifestDoesNotExist()
    {
        File.Delete(_model.ManifestPath);

        var e = LoadFails();

        Assert.Equal($"{_model.ManifestPath}: the manifest does not exist.", Assert.Single(e.Problems));
    }

    [Fact]
    public void LoadModel_MissingModelFolder_ThrowsValidationException()
    {
        var missing = Path.Combine(_model.ZooDirectory, "nowhere");

        var e = Assert.Throws<ZooValidationException>(() => new ZooLoader(_graphs).LoadModel(missing));

        Assert.Contains(e.Problems, p => p.StartsWith(Path.Combine(missing, ZooLoader.ManifestFileName), StringComparison.Ordinal));
    }

    [Fact]
    public void LoadModel_VariantsKeyMissing_ReportsVariantNeeded()
    {
        var manifest = _model.Manifest;
        _model.Manifest = manifest[..manifest.IndexOf("variants:", StringComparison.Ordinal)];

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, "variants", "needs at least one variant.");
    }

    [Fact]
    public void LoadModel_EmptyVariantsList_ReportsVariantNeeded()
    {
        var manifest = _model.Manifest;
        _model.Manifest = manifest[..manifest.IndexOf("variants:", StringComparison.Ordinal)] + "variants: []\n";

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, "variants", "needs at least one variant.");
    }

    [Fact]
    public void LoadModel_NoInputs_ReportsInputNeeded()
    {
        _model.Edit("inputs:\n  - name: image\n    datatype: FP32\n    shape: [-1, 1, 8, 8]\n", "inputs: []\n");

        var e = LoadFails();

        ProblemAssert.Has(e, _model.ManifestPath, "inputs", "needs at least one tensor");
    }

    [Fact]
    public void LoadModel_YamlSyntaxError_ReportsLineAndColumn()
    {
        _model.Edit("shape: [-1, 10]\n", "shape: [-1, 10\n");

        var e = LoadFails();

        var problem = Assert.Single(e.Problems);
        Assert.Matches($"^{Regex.Escape(_model.ManifestPath)}:[1-9][0-9]*:[1-9][0-9]*: ", problem);
    }

    [Fact]
    public void LoadModel_UnknownKey_ReportsItsLineColumnAndName()
    {
        // Line 6, column 1: after two comment lines, name, version and task.
        _model.Edit("task: image-classification\n", "task: image-classification\ncolour: blue\n");

        var e = LoadFails();

        var problem = Assert.Single(e.Problems);
        Assert.StartsWith($"{_model.ManifestPath}:6:1: ", problem, StringComparison.Ordinal);
        Assert.Contains("colour", problem, StringComparison.Ordinal);
    }

    [Fact]
    public void LoadModel_UnknownNestedKey_ReportsItsLineAndColumn()
    {
        _model.Edit("    exit_threshold: 0.9\n", "    exit_treshold: 0.9\n");
        var line = _model.Manifest.Split('\n').ToList().FindIndex(l => l.Contains("exit_treshold", StringComparison.Ordinal)) + 1;

        var e = LoadFails();

        var problem = Assert.Single(e.Problems);
        Assert.StartsWith($"{_model.ManifestPath}:{line}:5: ", problem, StringComparison.Ordinal);
        Assert.Contains("exit_treshold", problem, StringComparison.Ordinal);
    }

    [Fact]
    public void LoadModel_WrongScalarType_ReportsLineAndColumn()
    {
        _model.Edit("max_batch_size: 64", "max_batch_size: many");

        var e = LoadFails();

        Assert.StartsWith($"{_model.ManifestPath}:7:", Assert.Single(e.Problems), StringComparison.Ordinal);
    }

    [Fact]
    public void LoadModel_KeyGivenTwice_ReportsTheDuplicate()
    {
        _model.Edit("max_batch_size: 64\n", "max_batch_size: 64\nmax_batch_size: 8\n");

        var e = LoadFails();

        Assert.Contains(e.Problems, p => p.Contains("max_batch_size", StringComparison.Ordinal));
    }

    [Fact]
    public void LoadModel_SeveralProblems_ReportsEveryOneInOneException()
    {
        _model.Edit("name: digits\n", "name: mnist\n");
        _model.Edit("shape: [-1, 10]", "shape: [-1, 0]");
        _model.Edit("kind: fp32", "kind: fp64");
        _model.Edit("exit_threshold: 0.9", "exit_threshold: 2");
        _model.Edit("default_variant: fp32", "default_variant: int8");

        var e = LoadFails();

        Assert.True(e.Problems.Count >= 5, string.Join(Environment.NewLine, e.Problems));
        ProblemAssert.Has(e, _model.ManifestPath, "name", "'mnist' differs");
        ProblemAssert.Has(e, _model.ManifestPath, "outputs[0].shape[1]", "is 0");
        ProblemAssert.Has(e, _model.ManifestPath, "variants[0] (fp32).kind", "'fp64'");
        ProblemAssert.Has(e, _model.ManifestPath, "variants[1] (early-exit).exit_threshold", "is 2");
        ProblemAssert.Has(e, _model.ManifestPath, "default_variant", "'int8'");
        Assert.All(e.Problems, p => Assert.Contains(p, e.Message, StringComparison.Ordinal));
        Assert.Contains($"has {e.Problems.Count} problems:", e.Message, StringComparison.Ordinal);
    }

    private ZooValidationException LoadFails() => ProblemAssert.LoadFails(_model, _graphs);
}
