using EffServe.Cli.Inference;
using EffServe.Cli.Tests.Infrastructure;
using EffServe.Core.Tensors;

namespace EffServe.Cli.Tests;

public sealed class EvalSetTests
{
    [Theory]
    [InlineData(0)]
    [InlineData(17)]
    [InlineData(539)]
    public void LoadSample_DigitsEvalSet_ReturnsOneImageAndItsLabel(int index)
    {
        var sample = EvalSet.LoadSample(RepoPaths.Zoo, "digits", index);

        Assert.Equal(index, sample.Index);
        Assert.Equal(540, sample.SampleCount);
        var image = Assert.Single(sample.Inputs);
        Assert.Equal("image", image.Key);
        Assert.Equal(DataType.Fp32, image.Value.DataType);
        Assert.Equal([1L, 1, 8, 8], image.Value.Shape);
        Assert.Equal(64 * sizeof(float), image.Value.Data.Length);

        var all = NpyArray.Read(Path.Combine(RepoPaths.Zoo, "digits", "eval", "images.npy"));
        Assert.Equal(all.Data.AsSpan(index * 256, 256).ToArray(), image.Value.Data);
        var labels = NpyArray.Read(Path.Combine(RepoPaths.Zoo, "digits", "eval", "labels.npy"));
        Assert.Equal(BitConverter.ToInt64(labels.Data, index * 8), sample.TrueClass);
        Assert.InRange(sample.TrueClass!.Value, 0, 9);
    }

    [Theory]
    [InlineData(540)]
    [InlineData(100000)]
    public void LoadSample_IndexOutOfRange_SaysHowManySamplesThereAre(int index)
    {
        var error = Assert.Throws<CliException>(() => EvalSet.LoadSample(RepoPaths.Zoo, "digits", index));

        Assert.Equal(ExitCodes.Usage, error.ExitCode);
        Assert.Contains($"--sample {index} is out of range", error.Message, StringComparison.Ordinal);
        Assert.Contains("540 samples (0 to 539)", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void LoadSample_NoManifest_PointsAtZooOption()
    {
        var error = Assert.Throws<CliException>(() => EvalSet.LoadSample(RepoPaths.Zoo, "no-such-model", 0));

        Assert.Equal(ExitCodes.InvalidInput, error.ExitCode);
        Assert.Contains("--zoo", error.Message, StringComparison.Ordinal);
        Assert.Contains(Path.Combine("no-such-model", "model.yaml"), error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void LoadSample_ManifestWithoutEvaluation_SaysSo()
    {
        using var zoo = new TempFolder();
        Directory.CreateDirectory(Path.Combine(zoo.Path, "m"));
        File.WriteAllText(Path.Combine(zoo.Path, "m", "model.yaml"), "name: m\nversion: \"1\"\nsomething_new: true\n");

        var error = Assert.Throws<CliException>(() => EvalSet.LoadSample(zoo.Path, "m", 0));

        Assert.Equal(ExitCodes.InvalidInput, error.ExitCode);
        Assert.Contains("declares no evaluation set", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void LoadSample_MissingNpy_NamesTheKeyAndFile()
    {
        using var zoo = new TempFolder();
        Directory.CreateDirectory(Path.Combine(zoo.Path, "m"));
        File.WriteAllText(Path.Combine(zoo.Path, "m", "model.yaml"), "evaluation:\n  inputs:\n    x: eval/x.npy\n");

        var error = Assert.Throws<CliException>(() => EvalSet.LoadSample(zoo.Path, "m", 0));

        Assert.Contains("evaluation.inputs.x", error.Message, StringComparison.Ordinal);
        Assert.Contains("does not exist", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void LoadSample_BrokenYaml_ReportsTheLine()
    {
        using var zoo = new TempFolder();
        Directory.CreateDirectory(Path.Combine(zoo.Path, "m"));
        File.WriteAllText(Path.Combine(zoo.Path, "m", "model.yaml"), "name: m\nevaluation: [unclosed\n");

        var error = Assert.Throws<CliException>(() => EvalSet.LoadSample(zoo.Path, "m", 0));

        Assert.Equal(ExitCodes.InvalidInput, error.ExitCode);
        Assert.Contains("model.yaml: line", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ResolveZoo_OptionThenEnvironmentThenDefault()
    {
        Assert.Equal(Path.GetFullPath("/data/zoo"), EvalSet.ResolveZoo("/data/zoo", _ => "/env/zoo", "/work"));
        Assert.Equal(Path.GetFullPath("/env/zoo"), EvalSet.ResolveZoo(null, _ => "/env/zoo", "/work"));
        Assert.Equal(Path.GetFullPath("/work/zoo"), EvalSet.ResolveZoo(null, _ => null, "/work"));
        Assert.Equal(Path.GetFullPath("/work/models"), EvalSet.ResolveZoo("models", _ => null, "/work"));
    }

    [Fact]
    public void Row_TakesOneEntryAsBatchOfOne()
    {
        var array = new NpyArray(DataType.Int32, [3, 2], [1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5, 0, 0, 0, 6, 0, 0, 0]);

        var row = EvalSet.Row(array, 1);

        Assert.Equal([1L, 2], row.Shape);
        Assert.Equal(new byte[] { 3, 0, 0, 0, 4, 0, 0, 0 }, row.Data);
    }
}
