using EffServe.Zoo.Data;
using EffServe.Zoo.Quantization;
using EffServe.Zoo.Tests.Support;

namespace EffServe.Zoo.Tests;

public sealed class Int8DigitsTests
{
    [Theory]
    [InlineData(CalibrationMethod.MinMax)]
    [InlineData(CalibrationMethod.Percentile)]
    [InlineData(CalibrationMethod.Entropy)]
    public void Quantize_Digits_WithinOnePointOfFp32(CalibrationMethod method)
    {
        var model = DigitsData.Model();

        var (quantized, _, _) = QdqQuantizer.Quantize(model, DigitsData.Samples, true, new CalibrationSettings { Method = method }, SilentProgress.Instance, TestContext.Current.CancellationToken);

        // The model's answer (logits) within one point either way; the early exits lose at most one
        // point (the weak first exit, at 73%, moves by more than a point either way between methods).
        foreach (var output in new[] { "logits", "exit1_logits", "exit2_logits" })
        {
            var c = OutputComparison.Measure(model, quantized, DigitsData.Samples, true, output, DigitsData.Labels, "eval", SilentProgress.Instance, TestContext.Current.CancellationToken);
            Assert.Equal(540, c.Samples);
            var message = $"{output}: fp32 {c.ReferenceAccuracy:P2}, int8 {c.CandidateAccuracy:P2}";
            Assert.True(c.AccuracyDeltaPoints >= -1.0, message);
            Assert.True(output != "logits" || c.AccuracyDeltaPoints <= 1.0, message);
        }
    }

    [Fact]
    public void OrtOptimizedGraph_Digits_IntegerConvolutionsAndGemms()
    {
        var (quantized, summary, _) = QdqQuantizer.Quantize(DigitsData.Model(), DigitsData.Samples, true, new CalibrationSettings(), SilentProgress.Instance, TestContext.Current.CancellationToken);

        // What ONNX Runtime saves after its own rewriting (SessionOptions.OptimizedModelFilePath).
        var kernels = KernelInspector.Inspect(quantized.ToBytes());

        Assert.Equal(3, summary.QuantizedNodes["Conv"]);
        Assert.Equal(3, kernels.Integer["QLinearConv"]);
        Assert.Equal(3, kernels.Integer["QGemm"]);
        Assert.Equal(1, kernels.Integer["QLinearAveragePool"]);
        Assert.Empty(kernels.FloatCompute);
        Assert.False(kernels.Operators.ContainsKey("DequantizeLinear"), "every DequantizeLinear was fused into an integer kernel");
    }
}
