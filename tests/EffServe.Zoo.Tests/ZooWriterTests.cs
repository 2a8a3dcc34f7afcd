using EffServe.Core.Zoo;
using EffServe.Zoo.Manifest;
using EffServe.Zoo.Tests.Support;

namespace EffServe.Zoo.Tests;

public sealed class ZooWriterTests
{
    [Fact]
    public void AddVariant_ResultDoesNotLoad_ManifestAndFoldersRestored()
    {
        using var zoo = DigitsZoo();
        var before = zoo.Listing();
        var manifest = File.ReadAllText(zoo.Combine("digits", "model.yaml"));
        var model = ZooModel.Open(zoo.Path, "digits");
        var entry = new VariantEntry("broken", "int8", "cpu", "broken/digits.onnx", null, null, null);

        var error = Assert.Throws<ZooValidationException>(() =>
            ZooWriter.AddVariant(model, entry, "broken", replace: false, folder => File.WriteAllText(Path.Combine(folder, "digits.onnx"), "not a model")));

        Assert.Contains("variants[2] (broken).file", error.Message, StringComparison.Ordinal);
        Assert.Equal(before, zoo.Listing());
        Assert.Equal(manifest, File.ReadAllText(zoo.Combine("digits", "model.yaml")));
    }

    [Fact]
    public void AddVariant_Replace_OldFilesGoneNewOnesIn()
    {
        using var zoo = DigitsZoo();
        var model = ZooModel.Open(zoo.Path, "digits");
        var entry = new VariantEntry("copy", "fp32", "cpu", "copy/digits.onnx", null, null, "first");
        ZooWriter.AddVariant(model, entry, "copy", replace: false, folder =>
        {
            File.Copy(TestPaths.DigitsModel, Path.Combine(folder, "digits.onnx"));
            File.WriteAllText(Path.Combine(folder, "stale.txt"), "from the first run");
        });

        var updated = ZooWriter.AddVariant(ZooModel.Open(zoo.Path, "digits"), entry with { Comment = "second" }, "copy", replace: true,
            folder => File.Copy(TestPaths.DigitsModel, Path.Combine(folder, "digits.onnx")));

        Assert.Equal(["digits.onnx"], Directory.EnumerateFiles(zoo.Combine("digits", "copy")).Select(Path.GetFileName));
        Assert.Single(updated.Variants, v => v.Name == "copy");
        var text = File.ReadAllText(zoo.Combine("digits", "model.yaml"));
        Assert.DoesNotContain("first", text, StringComparison.Ordinal);
        Assert.Contains("# made by effserve zoo: second", text, StringComparison.Ordinal);
        Assert.DoesNotContain(zoo.Listing(), p => p.Contains(".effserve-staging", StringComparison.Ordinal));
    }

    [Fact]
    public void CreateModel_BuildFails_NothingLeftInTheZoo()
    {
        using var zoo = new TempFolder();

        Assert.Throws<InvalidOperationException>(() => ZooWriter.CreateModel(zoo.Path, "half", replace: false, folder =>
        {
            File.WriteAllText(Path.Combine(folder, "model.yaml"), "name: half\n");
            throw new InvalidOperationException("the build stopped half-way");
        }));

        Assert.Empty(zoo.Listing());
    }

    [Fact]
    public void CreateModel_ReplaceFailsToLoad_PreviousModelKept()
    {
        using var zoo = DigitsZoo();
        var before = zoo.Listing();

        Assert.Throws<ZooValidationException>(() => ZooWriter.CreateModel(zoo.Path, "digits", replace: true,
            folder => File.WriteAllText(Path.Combine(folder, "model.yaml"), "name: digits\ntask: x\n")));

        Assert.Equal(before, zoo.Listing());
        Assert.NotNull(ZooModel.Load(zoo.Combine("digits")));
    }

    private static TempFolder DigitsZoo()
    {
        var zoo = new TempFolder();
        ZooCli.CopyFolder(TestPaths.DigitsFolder, zoo.Combine("digits"));
        return zoo;
    }
}
