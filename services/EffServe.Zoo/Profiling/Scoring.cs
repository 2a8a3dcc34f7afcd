using System.Runtime.InteropServices;
using EffServe.Core.Tensors;
using EffServe.Zoo.Data;

namespace EffServe.Zoo.Profiling;

/// <summary>Top-1 predictions from a classifier's output, as the profile scores them.</summary>
public static class Scoring
{
    /// <summary>Whether accuracy can be measured on an output of this datatype: FP32 scores (logits or probabilities).</summary>
    public static bool CanScore(DataType type) => type == DataType.Fp32;

    /// <summary>
    /// Writes the top class of each of <paramref name="rows"/> rows of <paramref name="output"/>
    /// (its elements split evenly into rows) to <paramref name="classes"/>; ties go to the lowest class.
    /// </summary>
    public static void ArgMax(NamedTensor output, int rows, Span<int> classes)
    {
        if (!CanScore(output.DataType))
        {
            throw new ArgumentException($"Output '{output.Name}' is {output.DataType.ToWireName()}; accuracy is measured on FP32 scores.", nameof(output));
        }

        var scores = MemoryMarshal.Cast<byte, float>(output.Data.Span);
        if (rows < 1 || scores.Length == 0 || scores.Length % rows != 0 || classes.Length < rows)
        {
            throw new ArgumentException($"Output '{output.Name}' of shape {Shapes.Format(output.Shape)} cannot be split into {rows} rows of scores.", nameof(output));
        }

        var perRow = scores.Length / rows;
        for (var r = 0; r < rows; r++)
        {
            classes[r] = ModelOutputs.ArgMax(scores.Slice(r * perRow, perRow));
        }
    }
}
