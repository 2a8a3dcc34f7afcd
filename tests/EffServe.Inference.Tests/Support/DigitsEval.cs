using System.Runtime.InteropServices;
using EffServe.Core.Tensors;
using EffServe.Testing;

namespace EffServe.Inference.Tests.Support;

/// <summary>The evaluation set of the demo model <c>digits</c>: 540 images of 1×8×8 pixels and their labels.</summary>
internal static class DigitsEval
{
    public const int Pixels = 64;
    public const int Classes = 10;

    private static readonly Lazy<(float[] Images, long[] Labels)> s_set = new(Load);

    public static int Count => s_set.Value.Labels.Length;

    public static long[] Labels => s_set.Value.Labels;

    /// <summary>The pixels of <paramref name="count"/> images from <paramref name="start"/>, row-major.</summary>
    public static ReadOnlySpan<float> Images(int start, int count) => s_set.Value.Images.AsSpan(start * Pixels, count * Pixels);

    private static (float[] Images, long[] Labels) Load()
    {
        var folder = Path.Combine(RepoPaths.Zoo, "digits", "eval");
        var images = NpyArray.Read(Path.Combine(folder, "images.npy"));
        var labels = NpyArray.Read(Path.Combine(folder, "labels.npy"));
        if (images.DataType != DataType.Fp32 || labels.DataType != DataType.Int64 || images.Shape[0] != labels.Shape[0])
        {
            throw new InvalidDataException($"Unexpected evaluation set: images {images.DataType} {Shapes.Format(images.Shape)}, labels {labels.DataType} {Shapes.Format(labels.Shape)}.");
        }

        return (MemoryMarshal.Cast<byte, float>(images.Data).ToArray(), MemoryMarshal.Cast<byte, long>(labels.Data).ToArray());
    }
}
