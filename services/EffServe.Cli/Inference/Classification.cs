namespace EffServe.Cli.Inference;

/// <summary>One class of a ranking: its index, its label and its probability.</summary>
public sealed record ClassScore(int Rank, int Index, string Label, double Probability);

/// <summary>Turns a classifier's raw scores (logits) into ranked class probabilities.</summary>
public static class Classification
{
    /// <summary>
    /// Softmax of <paramref name="logits"/>, computed stably (the largest logit is subtracted
    /// first, so large values do not overflow).
    /// </summary>
    public static double[] Softmax(ReadOnlySpan<double> logits)
    {
        var probabilities = new double[logits.Length];
        if (logits.Length == 0)
        {
            return probabilities;
        }

        var max = double.NegativeInfinity;
        foreach (var value in logits)
        {
            max = Math.Max(max, value);
        }

        if (double.IsNegativeInfinity(max))
        {
            // Every score is -inf: nothing to prefer, so every class is equally likely.
            Array.Fill(probabilities, 1.0 / logits.Length);
            return probabilities;
        }

        var sum = 0.0;
        for (var i = 0; i < logits.Length; i++)
        {
            probabilities[i] = Math.Exp(logits[i] - max);
            sum += probabilities[i];
        }

        for (var i = 0; i < probabilities.Length; i++)
        {
            probabilities[i] /= sum;
        }

        return probabilities;
    }

    /// <summary>
    /// The <paramref name="k"/> most probable classes, most probable first; ties go to the lower
    /// class index. A <paramref name="k"/> above the number of classes returns every class.
    /// </summary>
    /// <param name="probabilities">One probability per class.</param>
    /// <param name="k">How many classes to return; at least 1.</param>
    /// <param name="labels">Class labels by index; a class without one is shown by its index.</param>
    public static IReadOnlyList<ClassScore> TopK(ReadOnlySpan<double> probabilities, int k, IReadOnlyList<string>? labels = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(k, 1);
        var order = new int[probabilities.Length];
        for (var i = 0; i < order.Length; i++)
        {
            order[i] = i;
        }

        var values = probabilities.ToArray();
        Array.Sort(order, (a, b) =>
        {
            // Descending by probability (NaN last), then ascending by index.
            var byValue = values[b].CompareTo(values[a]);
            return byValue != 0 ? byValue : a.CompareTo(b);
        });

        var count = Math.Min(k, order.Length);
        var top = new ClassScore[count];
        for (var r = 0; r < count; r++)
        {
            var index = order[r];
            top[r] = new ClassScore(r + 1, index, LabelOf(index, labels), values[index]);
        }

        return top;
    }

    /// <summary>The label of class <paramref name="index"/>, or the index itself when there is none.</summary>
    public static string LabelOf(long index, IReadOnlyList<string>? labels) =>
        labels is not null && index >= 0 && index < labels.Count ? labels[(int)index] : index.ToString(System.Globalization.CultureInfo.InvariantCulture);
}
