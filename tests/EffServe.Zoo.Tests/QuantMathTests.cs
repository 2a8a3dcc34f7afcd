using EffServe.Zoo.Quantization;

namespace EffServe.Zoo.Tests;

public sealed class QuantMathTests
{
    [Fact]
    public void ForActivation_SignedRange_ScaleSpansRangeAndZeroIsExact()
    {
        // [-1, 3] over 255 steps: scale 4/255; real 0 sits at 1 / (4/255) = 63.75, rounded to 64.
        var p = QuantMath.ForActivation(-1f, 3f);

        Assert.Equal(4f / 255f, p.Scale, 1e-7f);
        Assert.Equal(64, p.ZeroPoint);
    }

    [Fact]
    public void ForActivation_PositiveRange_WidenedToZero()
    {
        var p = QuantMath.ForActivation(2f, 5f);

        Assert.Equal(5f / 255f, p.Scale, 1e-7f);
        Assert.Equal(0, p.ZeroPoint);
    }

    [Fact]
    public void ForActivation_NegativeRange_ZeroPointAtTop()
    {
        var p = QuantMath.ForActivation(-6f, -1f);

        Assert.Equal(6f / 255f, p.Scale, 1e-7f);
        Assert.Equal(255, p.ZeroPoint);
    }

    [Fact]
    public void ForActivation_AllZero_ScaleOne()
    {
        Assert.Equal(new ActivationParams(1f, 0), QuantMath.ForActivation(0f, 0f));
    }

    [Fact]
    public void Quantize_SaturatesAndRoundsToEven()
    {
        var p = new ActivationParams(0.5f, 10);

        Assert.Equal(10, QuantMath.Quantize(0f, p));
        Assert.Equal(10, QuantMath.Quantize(0.25f, p)); // half a step: the tie goes to the even 0
        Assert.Equal(12, QuantMath.Quantize(0.75f, p)); // a step and a half: the tie goes to the even 2
        Assert.Equal(0, QuantMath.Quantize(-100f, p));
        Assert.Equal(255, QuantMath.Quantize(1000f, p));
    }

    [Fact]
    public void QuantizeWeights_Axis0_ScalePerOutputChannel()
    {
        // Two output channels of three weights each: peaks 2.54 (scale 0.02) and 0.127 (scale 0.001).
        float[] weights = [1.3f, -2.54f, 0.5f, 0.127f, 0f, -0.064f];

        var (codes, scales) = QuantMath.QuantizeWeights(weights, [2, 3], axis: 0);

        Assert.Equal(0.02f, scales[0], 1e-8f);
        Assert.Equal(0.001f, scales[1], 1e-9f);
        Assert.Equal(new sbyte[] { 65, -127, 25, 127, 0, -64 }, codes);
    }

    [Fact]
    public void QuantizeWeights_Axis1_ScalePerColumn()
    {
        // A [K = 2, N = 2] MatMul weight: columns are the output channels, peaks 2 and 0.5.
        float[] weights = [1.2f, 0.5f, -2f, 0.3f];

        var (codes, scales) = QuantMath.QuantizeWeights(weights, [2, 2], axis: 1);

        Assert.Equal(2f / 127f, scales[0], 1e-8f);
        Assert.Equal(0.5f / 127f, scales[1], 1e-8f);
        Assert.Equal(new sbyte[] { 76, 127, -127, 76 }, codes);
    }

    [Fact]
    public void QuantizeBias_ScaleIsInputTimesWeightScale()
    {
        var (codes, scales) = QuantMath.QuantizeBias([0.5f, -1f], inputScale: 0.1f, weightScales: [0.01f, 0.02f]);

        Assert.Equal(0.001f, scales[0], 1e-9f);
        Assert.Equal(0.002f, scales[1], 1e-9f);
        Assert.Equal([500, -500], codes);
    }

    [Fact]
    public void Histogram_Percentile_CutsTheOutliers()
    {
        // 10 000 values spread over [0, 1), and one outlier at 100.
        var values = Enumerable.Range(0, 10_000).Select(i => i / 10_000f).Append(100f).ToArray();
        var histogram = new Histogram(2048, new TensorRange(0f, 100f), magnitudes: false);
        histogram.Add(values);

        var range = histogram.PercentileRange(99.9);

        Assert.Equal(0f, range.Min);
        Assert.InRange(range.Max, 0.9f, 1.2f);
    }

    [Fact]
    public void Histogram_Entropy_ClipsALongTail()
    {
        // Mostly small values with a thin tail to 50: the entropy threshold lies well below 50.
        var random = new Random(5);
        var values = Enumerable.Range(0, 100_000).Select(_ => (float)Math.Abs(random.NextDouble() * random.NextDouble() * 2)).ToList();
        values.AddRange(Enumerable.Range(0, 10).Select(i => 20f + (3 * i)));
        var histogram = new Histogram(2048, new TensorRange(0f, values.Max()), magnitudes: true);
        histogram.Add(values.ToArray());

        var range = histogram.EntropyRange(new TensorRange(0f, values.Max()));

        Assert.Equal(0f, range.Min);
        Assert.InRange(range.Max, 1f, 25f);
    }
}
