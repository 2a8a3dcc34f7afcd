using EffServe.Core.Tests.Support;
using EffServe.Core.Zoo;

namespace EffServe.Core.Tests.Zoo;

/// <summary>Loading a whole zoo folder: every model folder, or only the named ones.</summary>
public sealed class ZooLoaderLoadZooTests : IDisposable
{
    private readonly DigitsModelCopy _zoo = new();
    private readonly FakeGraphReader _graphs = new();

    public ZooLoaderLoadZooTests()
    {
        _zoo.AddModelCopy("digits-b");

        // A folder without a manifest is not a model (like zoo/scripts).
        Directory.CreateDirectory(Path.Combine(_zoo.ZooDirectory, "scripts"));
        File.WriteAllText(Path.Combine(_zoo.ZooDirectory, "scripts", "train.py"), "print('hi')\n");
    }

    public void Dispose() => _zoo.Dispose();

    [Fact]
    public void LoadZoo_TwoModelFolders_LoadsBothInNameOrder()
    {
        var models = Loader().LoadZoo(_zoo.ZooDirectory);

        Assert.Equal(["digits", "digits-b"], models.Select(m => m.Name));
        Assert.Equal(Path.Combine(_zoo.ZooDirectory, "digits-b"), models[1].Directory);
        Assert.All(models, m => Assert.Equal(2, m.Variants.Count));
    }

    [Fact]
    public void LoadZoo_OnlyFilter_LoadsOnlyTheNamedModel()
    {
        var models = Loader().LoadZoo(_zoo.ZooDirectory, ["digits-b"]);

        Assert.Equal("digits-b", Assert.Single(models).Name);
        Assert.DoesNotContain(_graphs.Reads, r => r.Contains("/digits/", StringComparison.Ordinal));
    }

    [Fact]
    public void LoadZoo_EmptyOnlyFilter_LoadsEveryModel()
    {
        var models = Loader().LoadZoo(_zoo.ZooDirectory, []);

        Assert.Equal(2, models.Count);
    }

    [Fact]
    public void LoadZoo_UnknownNameInOnly_ReportsTheModelsFound()
    {
        var e = Assert.Throws<ZooValidationException>(() => Loader().LoadZoo(_zoo.ZooDirectory, ["digits", "mnist"]));

        var problem = Assert.Single(e.Problems);
        Assert.Equal($"{_zoo.ZooDirectory}: no model folder 'mnist' with a model.yaml (models found: digits, digits-b).", problem);
    }

    [Fact]
    public void LoadZoo_FolderWithoutManifestNamedInOnly_IsNotAModel()
    {
        var e = Assert.Throws<ZooValidationException>(() => Loader().LoadZoo(_zoo.ZooDirectory, ["scripts"]));

        Assert.Contains(e.Problems, p => p.Contains("no model folder 'scripts'", StringComparison.Ordinal));
    }

    [Fact]
    public void LoadZoo_MissingZooFolder_Throws()
    {
        var missing = Path.Combine(_zoo.ZooDirectory, "no-such-zoo");

        var e = Assert.Throws<ZooValidationException>(() => Loader().LoadZoo(missing));

        Assert.Equal($"The zoo folder '{missing}' does not exist.", Assert.Single(e.Problems));
    }

    [Fact]
    public void LoadZoo_FolderWithoutModels_ReportsNoModelFolders()
    {
        var empty = Path.Combine(_zoo.ZooDirectory, "scripts");

        var e = Assert.Throws<ZooValidationException>(() => Loader().LoadZoo(empty));

        Assert.Contains("no model folders", Assert.Single(e.Problems), StringComparison.Ordinal);
    }

    [Fact]
    public void LoadZoo_OneBrokenModel_ReportsItsProblemsUnderItsOwnManifest()
    {
        var broken = Path.Combine(_zoo.ZooDirectory, "digits-b", ZooLoader.ManifestFileName);
        File.WriteAllText(broken, File.ReadAllText(broken).Replace("kind: fp32", "kind: fp64", StringComparison.Ordinal));

        var e = Assert.Throws<ZooValidationException>(() => Loader().LoadZoo(_zoo.ZooDirectory));

        var problem = Assert.Single(e.Problems);
        Assert.StartsWith($"{broken}: variants[0] (fp32).kind: ", problem, StringComparison.Ordinal);
        Assert.StartsWith($"The zoo at {_zoo.ZooDirectory} has 1 problem:", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void LoadZoo_SeveralBrokenModels_ReportsAllOfThem()
    {
        _zoo.Edit("name: digits\n", "name: other\n");
        File.Delete(Path.Combine(_zoo.ZooDirectory, "digits-b", "fp32", "digits.onnx"));

        var e = Assert.Throws<ZooValidationException>(() => Loader().LoadZoo(_zoo.ZooDirectory));

        ProblemAssert.Has(e, _zoo.ManifestPath, "name", "'other' differs");
        ProblemAssert.Has(e, Path.Combine(_zoo.ZooDirectory, "digits-b", ZooLoader.ManifestFileName), "variants[0] (fp32).file", "does not exist");
    }

    [Fact]
    public void LoadZoo_RepositoryZoo_LoadsDigits()
    {
        var models = new ZooLoader(new EffServe.Onnx.OnnxGraphReader()).LoadZoo(RepoPaths.Zoo);

        Assert.Contains(models, m => m.Name == "digits");
        Assert.Contains(models, m => m.Name == "shapes");
    }

    private ZooLoader Loader() => new(_graphs);
}
