using EffServe.Zoo.Onnx;
using Microsoft.ML.OnnxRuntime;

namespace EffServe.Zoo.Data;

/// <summary>FP32 outputs of a model over a sample set, one flat row per sample, and comparisons between them.</summary>
public sealed class ModelOutputs
{
    private ModelOutputs(IReadOnlyDictionary<string, float[][]> rows)
    {
        Rows = rows;
    }

    /// <summary>Output name → one row of values per sample.</summary>
    public IReadOnlyDictionary<string, float[][]> Rows { get; }

    /// <summary>Runs <paramref name="session"/> over the samples and keeps the named FP32 outputs.</summary>
    public static ModelOutputs Collect(
        InferenceSession session,
        SampleSet samples,
        bool hasBatchDimension,
        IReadOnlyList<string> outputs,
        IProgressStep? progress = null,
        CancellationToken cancellationToken = default)
    {
        var rows = outputs.ToDictionary(o => o, _ => new float[samples.Count][], StringComparer.Ordinal);
        OrtRunner.Run(session, samples, hasBatchDimension, outputs, (start, count, values) =>
        {
            for (var o = 0; o < outputs.Count; o++)
            {
                var data = values[o].GetTensorDataAsSpan<float>();
                var width = data.Length / count;
                for (var s = 0; s < count; s++)
                {
                    rows[outputs[o]][start + s] = data.Slice(s * width, width).ToArray();
                }
            }
        }, progress: progress, cancellationToken: cancellationToken);
        return new ModelOutputs(rows);
    }

    /// <summary>The index of the largest value (the first on ties).</summary>
    public static int ArgMax(ReadOnlySpan<float> row)
    {
        var best = 0;
        for (var i = 1; i < row.Length; i++)
        {
            if (row[i] > row[best])
            {
                best = i;
            }
        }

        return best;
    }

    /// <summary>Share of samples whose top class in <paramref name="output"/> is the label.</summary>
    public double Accuracy(string output, IReadOnlyList<long> labels)
    {
        var rows = Rows[output];
        var correct = 0;
        for (var s = 0; s < rows.Length; s++)
        {
            correct += ArgMax(rows[s]) == labels[s] ? 1 : 0;
        }

        return rows.Length == 0 ? 0 : (double)correct / rows.Length;
    }

    /// <summary>Share of samples on which both agree on the top class of <paramref name="output"/>.</summary>
    public double TopClassAgreement(ModelOutputs other, string output)
    {
        var a = Rows[output];
        var b = other.Rows[output];
        var same = 0;
        for (var s = 0; s < a.Length; s++)
        {
            same += ArgMax(a[s]) == ArgMax(b[s]) ? 1 : 0;
        }

        return a.Length == 0 ? 1 : (double)same / a.Length;
    }

    /// <summary>The largest absolute difference between the two at any element of <paramref name="output"/>.</summary>
    public double MaxAbsDifference(ModelOutputs other, string output)
    {
        var a = Rows[output];
        var b = other.Rows[output];
        double worst = 0;
        for (var s = 0; s < a.Length; s++)
        {
            for (var i = 0; i < a[s].Length; i++)
            {
                var d = Math.Abs((double)a[s][i] - b[s][i]);
                worst = double.IsNaN(d) ? double.PositiveInfinity : Math.Max(worst, d);
            }
        }

        return worst;
    }

    /// <summary>The largest magnitude in <paramref name="output"/>: the scale differences are judged against.</summary>
    public double MaxAbsValue(string output) =>
        Rows[output].SelectMany(r => r).Select(v => Math.Abs((double)v)).DefaultIfEmpty(0).Max();
}
