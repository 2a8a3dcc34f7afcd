using EffServe.LoadGen;

namespace EffServe.LoadGen.Tests;

public sealed class LoadMixTests
{
    [Fact]
    public void Parse_Document_ReadsEveryField()
    {
        var mix = LoadMix.Parse("""
            {
              // comments are allowed
              "classes": [
                {"name": "tight", "slo_ms": 2.5, "weight": 3, "min_accuracy": 0.95, "priority": 1, "timeout_us": 20000},
                {"name": "loose", "slo_ms": 40},
              ]
            }
            """);

        Assert.Equal(2, mix.Classes.Count);
        Assert.Equal(new SloClass { Name = "tight", SloMs = 2.5, Weight = 3, MinAccuracy = 0.95, Priority = 1, TimeoutUs = 20000 }, mix.Classes[0]);
        Assert.Equal(new SloClass { Name = "loose", SloMs = 40 }, mix.Classes[1]);
        Assert.Equal([0.75, 0.25], mix.Shares());
    }

    [Fact]
    public void Parse_BareArray_Accepted()
    {
        var mix = LoadMix.Parse("""[{"name": "only", "slo_ms": 10}]""");

        Assert.Equal("only", Assert.Single(mix.Classes).Name);
    }

    [Theory]
    [InlineData("""{"classes": [{"name": "a", "slo_ms": 0}]}""", "class 'a': slo_ms must be a positive number of milliseconds, not 0")]
    [InlineData("""{"classes": [{"name": "a", "slo_ms": 5, "weight": -1}]}""", "class 'a': weight must be positive, not -1")]
    [InlineData("""{"classes": [{"name": "a", "slo_ms": 5, "min_accuracy": 1.5}]}""", "class 'a': min_accuracy must lie in [0, 1], not 1.5")]
    [InlineData("""{"classes": [{"name": "a", "slo_ms": 5, "priority": -2}]}""", "class 'a': priority must be 0 (default) or more")]
    [InlineData("""{"classes": [{"name": "a", "slo_ms": 5}, {"name": "a", "slo_ms": 6}]}""", "class 'a': the name is used twice")]
    [InlineData("""{"classes": [{"name": "", "slo_ms": 5}]}""", "class 0: name is required")]
    [InlineData("""{"classes": []}""", "lists no classes")]
    [InlineData("""{"classes": [{"name": "a"}]}""", "not valid JSON")]
    [InlineData("""{"classes": [{"name": "a", "slo_ms": 5, "sloms": 3}]}""", "not valid JSON")]
    [InlineData("""{"classes": [""", "not valid JSON")]
    public void Parse_BadMix_SaysWhatIsWrong(string json, string expected)
    {
        var e = Assert.Throws<LoadGenException>(() => LoadMix.Parse(json));

        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_SeveralProblems_ReportsEveryOne()
    {
        var e = Assert.Throws<LoadGenException>(() => LoadMix.Parse("""[{"name": "a", "slo_ms": -1, "weight": 0}, {"name": "b", "slo_ms": 5, "min_accuracy": 2}]"""));

        Assert.Contains("class 'a': slo_ms", e.Message, StringComparison.Ordinal);
        Assert.Contains("class 'a': weight", e.Message, StringComparison.Ordinal);
        Assert.Contains("class 'b': min_accuracy", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ParseSpecs_ShortForms_FillDefaults()
    {
        var mix = LoadMix.ParseSpecs(["tight:5:0.3::1", "loose:50", "floor:20:1:0.97"]);

        Assert.Equal(new SloClass { Name = "tight", SloMs = 5, Weight = 0.3, Priority = 1 }, mix.Classes[0]);
        Assert.Equal(new SloClass { Name = "loose", SloMs = 50 }, mix.Classes[1]);
        Assert.Equal(new SloClass { Name = "floor", SloMs = 20, MinAccuracy = 0.97 }, mix.Classes[2]);
    }

    [Theory]
    [InlineData("tight", "is not a class spec")]
    [InlineData(":5", "is not a class spec")]
    [InlineData("tight:fast", "slo_ms 'fast' is not a number")]
    [InlineData("tight:5:x", "weight 'x' is not a number")]
    [InlineData("tight:5:1:0.9:high", "priority 'high' is not a whole number")]
    [InlineData("tight::1", "slo_ms is required")]
    public void ParseSpecs_BadSpec_SaysWhatIsWrong(string spec, string expected)
    {
        var e = Assert.Throws<LoadGenException>(() => LoadMix.ParseSpecs([spec]));

        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_MissingFile_NamesIt()
    {
        var path = Path.Combine(Path.GetTempPath(), "effserve-no-such-mix.json");

        var e = Assert.Throws<LoadGenException>(() => LoadMix.Load(path));

        Assert.Contains(path, e.Message, StringComparison.Ordinal);
    }
}
