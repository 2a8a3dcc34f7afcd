namespace EffServe.Core.EarlyExit;

/// <summary>
/// When a sample leaves an early-exit model: after a stage whose exit head's top softmax
/// probability reaches the threshold. Threshold 1 never exits early (every stage runs);
/// threshold 0 always exits at the first stage.
/// </summary>
public static class ExitRule
{
    /// <summary>The largest softmax probability of one row of logits, computed stably in double precision.</summary>
    public static double TopProbability(ReadOnlySpan<float> logits)
    {
        if (logits.IsEmpty)
        {
            throw new ArgumentException("An exit head needs at least one logit.", nameof(logits));
        }

        var max = float.NegativeInfinity;
        foreach (var l in logits)
        {
            max = Math.Max(max, l);
        }

        if (float.IsNaN(max) || float.IsInfinity(max))
        {
            return 0; // a broken head never counts as confident
        }

        double sum = 0;
        foreach (var l in logits)
        {
            sum += Math.Exp((double)l - max);
        }

        return 1.0 / sum;
    }

    /// <summary>Whether a sample whose exit head gave <paramref name="topProbability"/> leaves here.</summary>
    public static bool ShouldExit(double topProbability, double threshold) =>
        threshold < 1.0 && topProbability >= threshold;

    /// <summary>Validates a threshold given by a request or configuration.</summary>
    public static bool IsValidThreshold(double threshold) => threshold is >= 0 and <= 1;
}
