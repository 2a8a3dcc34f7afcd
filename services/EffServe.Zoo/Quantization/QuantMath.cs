namespace EffServe.Zoo.Quantization;

/// <summary>The quantisation parameters of an activation tensor: uint8, asymmetric, per tensor.</summary>
/// <param name="Scale">Real value of one step.</param>
/// <param name="ZeroPoint">The uint8 code that stands for real 0.</param>
public readonly record struct ActivationParams(float Scale, byte ZeroPoint);

/// <summary>
/// The arithmetic of static INT8 quantisation as ONNX Runtime's CPU integer kernels expect it:
/// activations uint8 asymmetric per tensor, weights int8 symmetric per output channel, biases
/// int32 with scale input_scale × weight_scale and zero point 0. Rounding is to nearest, ties to
/// even, as QuantizeLinear rounds.
/// </summary>
public static class QuantMath
{
    /// <summary>Largest int8 code of symmetric weights; -127 is the smallest, so 0 sits in the middle.</summary>
    public const int WeightLimit = 127;

    /// <summary>
    /// Parameters that map [<paramref name="min"/>, <paramref name="max"/>], widened to contain 0
    /// so that 0 is exact, onto the 256 uint8 codes.
    /// </summary>
    public static ActivationParams ForActivation(float min, float max)
    {
        var low = Math.Min((double)min, 0.0);
        var high = Math.Max((double)max, 0.0);
        if (!double.IsFinite(low) || !double.IsFinite(high))
        {
            throw new ArgumentException($"the range [{min}, {max}] is not finite.", nameof(min));
        }

        if (high - low <= 0)
        {
            // A tensor that is always 0: any scale represents it exactly.
            return new ActivationParams(1f, 0);
        }

        var scale = (float)((high - low) / 255.0);
        var zeroPoint = Math.Clamp(Math.Round(-low / scale, MidpointRounding.ToEven), 0, 255);
        return new ActivationParams(scale, (byte)zeroPoint);
    }

    /// <summary>The uint8 code of <paramref name="value"/> under <paramref name="p"/>, saturated.</summary>
    public static byte Quantize(float value, ActivationParams p) =>
        (byte)Math.Clamp(Math.Round(value / p.Scale, MidpointRounding.ToEven) + p.ZeroPoint, 0, 255);

    /// <summary>
    /// Quantises a weight tensor per channel along <paramref name="axis"/>: each channel's scale
    /// is its largest magnitude / 127, its zero point 0.
    /// </summary>
    /// <returns>The int8 codes (same layout as the input) and one scale per channel.</returns>
    public static (sbyte[] Codes, float[] Scales) QuantizeWeights(ReadOnlySpan<float> weights, IReadOnlyList<long> dims, int axis)
    {
        var channels = checked((int)dims[axis]);
        long inner = 1;
        for (var d = axis + 1; d < dims.Count; d++)
        {
            inner *= dims[d];
        }

        var block = checked((int)inner);
        var scales = new float[channels];
        var peaks = new float[channels];
        for (var i = 0; i < weights.Length; i++)
        {
            var c = i / block % channels;
            peaks[c] = Math.Max(peaks[c], Math.Abs(weights[i]));
        }

        for (var c = 0; c < channels; c++)
        {
            scales[c] = peaks[c] > 0 ? peaks[c] / WeightLimit : 1f;
        }

        var codes = new sbyte[weights.Length];
        for (var i = 0; i < weights.Length; i++)
        {
            var c = i / block % channels;
            codes[i] = (sbyte)Math.Clamp(Math.Round(weights[i] / scales[c], MidpointRounding.ToEven), -WeightLimit, WeightLimit);
        }

        return (codes, scales);
    }

    /// <summary>
    /// Quantises a bias to int32 for an integer kernel whose accumulator has scale
    /// <paramref name="inputScale"/> × <paramref name="weightScales"/>[c].
    /// </summary>
    public static (int[] Codes, float[] Scales) QuantizeBias(ReadOnlySpan<float> bias, float inputScale, IReadOnlyList<float> weightScales)
    {
        var codes = new int[bias.Length];
        var scales = new float[bias.Length];
        for (var c = 0; c < bias.Length; c++)
        {
            scales[c] = inputScale * weightScales[weightScales.Count == 1 ? 0 : c];
            codes[c] = (int)Math.Clamp(Math.Round(bias[c] / (double)scales[c], MidpointRounding.ToEven), int.MinValue, int.MaxValue);
        }

        return (codes, scales);
    }
}
