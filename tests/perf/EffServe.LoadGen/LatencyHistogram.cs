namespace EffServe.LoadGen;

/// <summary>
/// A log-bucketed latency histogram in the manner of HdrHistogram: values in microseconds, exact
/// below <see cref="SubBuckets"/> µs and within 1/<see cref="SubBuckets"/> (under 1%) above, up to
/// about 2^40 µs. Recording is O(1) and allocation-free; not thread-safe (one writer, or lock).
/// </summary>
public sealed class LatencyHistogram
{
    /// <summary>Linear sub-buckets per power of two: the relative precision is 1/128.</summary>
    public const int SubBuckets = 128;

    private const int SubBucketBits = 7;
    private const int Magnitudes = 34;
    private readonly long[] _counts = new long[(Magnitudes + 1) * SubBuckets];

    public long Count { get; private set; }

    public long MaxMicroseconds { get; private set; }

    public long MinMicroseconds { get; private set; } = long.MaxValue;

    public double SumMicroseconds { get; private set; }

    public double MeanMicroseconds => Count == 0 ? double.NaN : SumMicroseconds / Count;

    /// <summary>Records one value (negative values count as 0).</summary>
    public void Record(long microseconds)
    {
        var value = Math.Max(0, microseconds);
        _counts[Index(value)]++;
        Count++;
        SumMicroseconds += value;
        MaxMicroseconds = Math.Max(MaxMicroseconds, value);
        MinMicroseconds = Math.Min(MinMicroseconds, value);
    }

    /// <summary>Adds another histogram's counts to this one.</summary>
    public void Add(LatencyHistogram other)
    {
        for (var i = 0; i < _counts.Length; i++)
        {
            _counts[i] += other._counts[i];
        }

        Count += other.Count;
        SumMicroseconds += other.SumMicroseconds;
        MaxMicroseconds = Math.Max(MaxMicroseconds, other.MaxMicroseconds);
        MinMicroseconds = Math.Min(MinMicroseconds, other.MinMicroseconds);
    }

    /// <summary>
    /// The value at quantile <paramref name="q"/> (0–1), nearest rank: the upper edge of the bucket
    /// holding the ceil(q·n)-th smallest value, clamped to the largest value recorded. NaN when empty.
    /// </summary>
    public double Percentile(double q)
    {
        if (Count == 0)
        {
            return double.NaN;
        }

        var rank = Math.Max(1, (long)Math.Ceiling(Math.Clamp(q, 0, 1) * Count));
        long seen = 0;
        for (var i = 0; i < _counts.Length; i++)
        {
            seen += _counts[i];
            if (seen >= rank)
            {
                return Math.Min(UpperEdge(i), MaxMicroseconds);
            }
        }

        return MaxMicroseconds;
    }

    /// <summary>How many recorded values are at most <paramref name="microseconds"/> (exact to the bucket's precision).</summary>
    public long CountAtOrBelow(long microseconds)
    {
        var last = Index(Math.Max(0, microseconds));
        long seen = 0;
        for (var i = 0; i <= last; i++)
        {
            seen += _counts[i];
        }

        return seen;
    }

    private static int Index(long value)
    {
        if (value < SubBuckets)
        {
            return (int)value;
        }

        // magnitude m ≥ 1 holds [2^(m+6), 2^(m+7)) in 128 steps of 2^(m-1).
        var magnitude = (int)Math.Min(63 - long.LeadingZeroCount(value) - SubBucketBits + 1, Magnitudes);
        var sub = (int)Math.Min(value >> (magnitude - 1), (2 * SubBuckets) - 1) - SubBuckets;
        return (magnitude * SubBuckets) + sub;
    }

    private static double UpperEdge(int index)
    {
        if (index < SubBuckets)
        {
            return index;
        }

        var magnitude = index / SubBuckets;
        var sub = index % SubBuckets;
        var step = 1L << (magnitude - 1);
        return ((SubBuckets + sub) * step) + step - 1;
    }
}
