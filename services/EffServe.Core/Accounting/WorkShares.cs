namespace EffServe.Core.Accounting;

/// <summary>
/// Splits a whole number of units (nanojoules, nanoseconds) among parts in proportion to their
/// weights, so that the parts add up to the whole exactly: each part gets the floor of its exact
/// share, and the units left over go one each to the parts with the largest remainders (the
/// lower index first on a tie).
/// </summary>
public static class WorkShares
{
    /// <summary>Splits <paramref name="total"/> by <paramref name="weights"/>; all weights zero splits evenly.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A negative total or weight, or no parts for a positive total.</exception>
    public static long[] Split(long total, ReadOnlySpan<long> weights)
    {
        var shares = new long[weights.Length];
        Split(total, weights, shares);
        return shares;
    }

    /// <inheritdoc cref="Split(long, ReadOnlySpan{long})"/>
    public static void Split(long total, ReadOnlySpan<long> weights, Span<long> shares)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(total);
        if (shares.Length != weights.Length)
        {
            throw new ArgumentException("There must be one share per weight.", nameof(shares));
        }

        if (weights.Length == 0)
        {
            ArgumentOutOfRangeException.ThrowIfNotEqual(total, 0L);
            return;
        }

        Int128 sum = 0;
        foreach (var w in weights)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(w, nameof(weights));
            sum += w;
        }

        var even = sum == 0;
        var divisor = even ? weights.Length : sum;
        var remainders = new Int128[weights.Length];
        long given = 0;
        for (var i = 0; i < weights.Length; i++)
        {
            var exact = (Int128)total * (even ? 1 : weights[i]);
            shares[i] = (long)(exact / divisor);
            remainders[i] = exact % divisor;
            given += shares[i];
        }

        // Fewer units are left than there are parts: hand them out by largest remainder.
        for (var left = total - given; left > 0; left--)
        {
            var best = 0;
            for (var i = 1; i < remainders.Length; i++)
            {
                if (remainders[i] > remainders[best])
                {
                    best = i;
                }
            }

            shares[best]++;
            remainders[best] = -1;
        }
    }
}
