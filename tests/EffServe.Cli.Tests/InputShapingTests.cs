using EffServe.Cli.Inference;
using EffServe.Contracts.Inference;
using EffServe.Core.Tensors;

namespace EffServe.Cli.Tests;

public sealed class InputShapingTests
{
    private static readonly ModelMetadataResponse.Types.TensorMetadata s_image = new() { Name = "image", Datatype = "FP32", Shape = { -1, 1, 8, 8 } };

    [Fact]
    public void Fit_RankOneLess_AddsBatchDimensionOfOne()
    {
        var array = Floats([1, 8, 8]);

        var tensor = InputShaping.Fit(array, s_image, "x.npy");

        Assert.Equal("image", tensor.Name);
        Assert.Equal([1L, 1, 8, 8], tensor.Shape);
        Assert.Equal(array.Data, tensor.Data.ToArray());
    }

    [Theory]
    [InlineData(1)]
    [InlineData(5)]
    public void Fit_SameRank_KeepsTheBatch(long batch)
    {
        var tensor = InputShaping.Fit(Floats([batch, 1, 8, 8]), s_image, "x.npy");

        Assert.Equal([batch, 1, 8, 8], tensor.Shape);
    }

    [Theory]
    [InlineData(new long[] { 8, 8 })]
    [InlineData(new long[] { 2, 1, 1, 8, 8 })]
    [InlineData(new long[] { 1, 3, 8, 8 })]
    [InlineData(new long[] { 2, 8 })]
    public void Fit_ShapeDoesNotFit_SaysBothShapes(long[] shape)
    {
        var error = Assert.Throws<CliException>(() => InputShaping.Fit(Floats(shape), s_image, "x.npy"));

        Assert.Equal(ExitCodes.InvalidInput, error.ExitCode);
        Assert.Contains(Shapes.Format(shape), error.Message, StringComparison.Ordinal);
        Assert.Contains("[-1, 1, 8, 8]", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Fit_InputWithoutBatchDimension_DropsALeadingOne()
    {
        var unbatched = new ModelMetadataResponse.Types.TensorMetadata { Name = "image", Datatype = "FP32", Shape = { 1, 8, 8 } };

        var tensor = InputShaping.Fit(Floats([1, 1, 8, 8]), unbatched, "eval");

        Assert.Equal([1L, 8, 8], tensor.Shape);
    }

    [Fact]
    public void Fit_WrongDatatype_SaysWhichAndHowToConvert()
    {
        var doubles = new NpyArray(DataType.Fp64, [1, 8, 8], new byte[64 * 8]);

        var error = Assert.Throws<CliException>(() => InputShaping.Fit(doubles, s_image, "x.npy"));

        Assert.Equal(ExitCodes.InvalidInput, error.ExitCode);
        Assert.Contains("x.npy holds FP64 but input 'image' takes FP32", error.Message, StringComparison.Ordinal);
    }

    private static NpyArray Floats(long[] shape) =>
        new(DataType.Fp32, shape, new byte[Shapes.ElementCount(shape) * sizeof(float)]);
}
