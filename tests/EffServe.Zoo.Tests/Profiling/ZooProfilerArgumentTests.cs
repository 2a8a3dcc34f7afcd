using EffServe.Zoo.Profiling;

namespace EffServe.Zoo.Tests.Profiling;

/// <summary>Requests that cannot be profiled fail before anything runs, say why, and leave the manifest alone.</summary>
public sealed class ZooProfilerArgumentTests : IDisposable
{
    private readonly ZooCopy _zoo = new(Profiles.DigitsFolder);
    private readonly byte[] _original;

    public ZooProfilerArgumentTests()
    {
        _original = File.ReadAllBytes(_zoo.Manifest("digits"));
    }

    public void Dispose() => _zoo.Dispose();

    [Fact]
    public void Profile_UnknownModel_IsNotFoundAndListsTheModels()
    {
        var e = Fails(new ProfileRequest(_zoo.Path, "digitz"));

        Assert.Equal(ZooToolError.NotFound, e.Error);
        Assert.Contains("has no model 'digitz' (models: digits).", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("../digits")]
    [InlineData("..")]
    public void Profile_ModelNameThatIsAPath_IsRejected(string model)
    {
        // From a sibling zoo folder, "../digits" would reach the real model: a name is not a path.
        var sibling = Directory.CreateDirectory(Path.Combine(_zoo.Path, "other")).FullName;

        var e = Fails(new ProfileRequest(sibling, model));

        Assert.Equal(ZooToolError.InvalidArgument, e.Error);
        Assert.Contains("is not a valid model name", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Profile_MissingZooFolder_IsNotFound()
    {
        var e = Fails(new ProfileRequest(Path.Combine(_zoo.Path, "nowhere"), "digits"));

        Assert.Equal(ZooToolError.NotFound, e.Error);
        Assert.Contains("nowhere does not exist", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Profile_UnknownVariant_IsUnknownNameAndListsTheVariants()
    {
        var e = Fails(new ProfileRequest(_zoo.Path, "digits") { Variants = ["fp32", "int4"] });

        Assert.Equal(ZooToolError.UnknownName, e.Error);
        Assert.Equal("model 'digits' has no variant 'int4' (variants: fp32, early-exit).", e.Message);
    }

    [Fact]
    public void Profile_BatchSizeZero_IsInvalidArgument()
    {
        var e = Fails(new ProfileRequest(_zoo.Path, "digits") { BatchSizes = [1, 0] });

        Assert.Equal(ZooToolError.InvalidArgument, e.Error);
        Assert.Equal("batch size 0 is not valid: batch sizes are whole numbers of 1 or more.", e.Message);
    }

    [Fact]
    public void Profile_BatchSizeAboveMaxBatchSize_IsInvalidArgument()
    {
        var e = Fails(new ProfileRequest(_zoo.Path, "digits") { BatchSizes = [1, 128] });

        Assert.Equal(ZooToolError.InvalidArgument, e.Error);
        Assert.Equal("batch size 128 exceeds the max_batch_size (64) of model 'digits'.", e.Message);
    }

    [Theory]
    [InlineData(1.5)]
    [InlineData(-0.1)]
    [InlineData(double.NaN)]
    public void Profile_ThresholdOutsideZeroToOne_IsInvalidArgument(double threshold)
    {
        var e = Fails(new ProfileRequest(_zoo.Path, "digits") { Thresholds = [0.9, threshold] });

        Assert.Equal(ZooToolError.InvalidArgument, e.Error);
        Assert.StartsWith("threshold ", e.Message, StringComparison.Ordinal);
        Assert.EndsWith(" is not valid: early-exit thresholds lie in [0, 1].", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Profile_SeveralBadValues_ReportsThemAll()
    {
        var e = Fails(new ProfileRequest(_zoo.Path, "digits") { BatchSizes = [0], Thresholds = [1.5], IntraOpThreads = -1 });

        Assert.Contains("batch size 0", e.Message, StringComparison.Ordinal);
        Assert.Contains("threshold 1.5", e.Message, StringComparison.Ordinal);
        Assert.Contains("-1 intra-op threads", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Profile_ManifestThatDoesNotLoad_IsInvalidModelWithTheLoadersProblems()
    {
        var broken = System.Text.Encoding.UTF8.GetString(_original).Replace("kind: fp32", "kind: fp33", StringComparison.Ordinal);
        File.WriteAllText(_zoo.Manifest("digits"), broken);

        var e = Fails(new ProfileRequest(_zoo.Path, "digits"));

        Assert.Equal(ZooToolError.InvalidModel, e.Error);
        Assert.Contains("'fp33' is not a variant kind", e.Message, StringComparison.Ordinal);
        Assert.Equal(broken, File.ReadAllText(_zoo.Manifest("digits")));
    }

    private ZooToolException Fails(ProfileRequest request)
    {
        var e = Assert.Throws<ZooToolException>(() => Profiles.Profiler().Profile(request with { Measurement = Profiles.Quick }, cancellationToken: TestContext.Current.CancellationToken));
        if (File.Exists(_zoo.Manifest("digits")) && e.Error != ZooToolError.InvalidModel)
        {
            Assert.Equal(_original, File.ReadAllBytes(_zoo.Manifest("digits")));
        }

        return e;
    }
}
