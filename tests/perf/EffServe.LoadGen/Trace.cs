namespace EffServe.LoadGen;

/// <summary>One request of a trace: when to send it (from the start of the run), its SLO class and the evaluation sample it carries.</summary>
/// <param name="OffsetSeconds">Scheduled send time, seconds after the run starts.</param>
/// <param name="ClassIndex">Index into the mix's classes.</param>
/// <param name="Sample">Index into the evaluation set.</param>
public readonly record struct TracedRequest(double OffsetSeconds, int ClassIndex, int Sample);

/// <summary>
/// Open-loop Poisson traces. The same seed gives the same sequence of (gap, class, sample) draws;
/// the gaps are exponential with mean 1 and divided by the rate, so the trace at rate 2r is the
/// trace at rate r played twice as fast: every policy and every rate sees the same requests in the
/// same order.
/// </summary>
public static class Trace
{
    /// <summary>The requests scheduled in [0, <paramref name="durationSeconds"/>) at <paramref name="ratePerSecond"/>.</summary>
    public static TracedRequest[] Generate(int seed, double ratePerSecond, double durationSeconds, IReadOnlyList<double> classShares, int sampleCount)
    {
        if (!(ratePerSecond > 0) || double.IsInfinity(ratePerSecond))
        {
            throw new LoadGenException($"the rate must be a positive number of requests per second, not {ratePerSecond}.");
        }

        if (!(durationSeconds > 0) || double.IsInfinity(durationSeconds))
        {
            throw new LoadGenException($"the duration must be a positive number of seconds, not {durationSeconds}.");
        }

        if (classShares.Count == 0 || sampleCount <= 0)
        {
            throw new LoadGenException("a trace needs at least one SLO class and one evaluation sample.");
        }

        var cumulative = new double[classShares.Count];
        var total = classShares.Sum();
        var sum = 0.0;
        for (var i = 0; i < cumulative.Length; i++)
        {
            sum += classShares[i] / total;
            cumulative[i] = sum;
        }

        var random = new Random(seed);
        var requests = new List<TracedRequest>((int)Math.Min(ratePerSecond * durationSeconds * 1.1 + 16, 10_000_000));
        var t = 0.0;
        while (true)
        {
            // Exponential gap with mean 1/rate: -ln(U) / rate, U in (0, 1].
            t += -Math.Log(1 - random.NextDouble()) / ratePerSecond;
            var u = random.NextDouble();
            var sample = random.Next(sampleCount);
            if (t >= durationSeconds)
            {
                break;
            }

            var c = 0;
            while (c < cumulative.Length - 1 && u >= cumulative[c])
            {
                c++;
            }

            requests.Add(new TracedRequest(t, c, sample));
        }

        return [.. requests];
    }
}
