namespace EffServe.Core.Selection;

/// <summary>Where a request's budget came from: the tightest of its limits.</summary>
public enum BudgetSource
{
    None,
    Slo,
    GrpcDeadline,
    Timeout,
}

/// <summary>
/// A request's latency budget as a deadline on a <see cref="TimeProvider"/>'s clock: the tightest
/// of <c>effserve.slo_ms</c>, the gRPC deadline and Triton's <c>timeout</c>, counted from arrival.
/// </summary>
/// <param name="Deadline">Timestamp by which the answer is due; <see cref="long.MaxValue"/> without a budget.</param>
/// <param name="Source">Which limit set it.</param>
/// <param name="BudgetMs">The budget it was set from, in milliseconds; null without one.</param>
public readonly record struct RequestBudget(long Deadline, BudgetSource Source, double? BudgetMs)
{
    public static RequestBudget None => new(long.MaxValue, BudgetSource.None, null);

    public bool HasDeadline => Deadline != long.MaxValue;

    /// <param name="time">The clock deadlines are kept on.</param>
    /// <param name="arrived">When the request arrived (<paramref name="time"/>'s timestamp).</param>
    /// <param name="sloMs">effserve.slo_ms.</param>
    /// <param name="grpcRemaining">Time left before the gRPC deadline, measured at arrival.</param>
    /// <param name="timeoutUs">Triton's timeout, microseconds.</param>
    public static RequestBudget Tightest(TimeProvider time, long arrived, double? sloMs, TimeSpan? grpcRemaining, long? timeoutUs)
    {
        ArgumentNullException.ThrowIfNull(time);
        var best = None;
        Consider(ref best, sloMs, BudgetSource.Slo);
        Consider(ref best, grpcRemaining?.TotalMilliseconds, BudgetSource.GrpcDeadline);
        Consider(ref best, timeoutUs / 1000.0, BudgetSource.Timeout);
        return best;

        void Consider(ref RequestBudget current, double? ms, BudgetSource source)
        {
            if (ms is not { } m || !double.IsFinite(m) || (current.BudgetMs is { } b && b <= m))
            {
                return;
            }

            // A budget beyond a year sets no practical deadline and would overflow the clock.
            var ticks = m >= 3.15e10 ? long.MaxValue : arrived + (long)(Math.Max(m, 0) / 1000.0 * time.TimestampFrequency);
            current = new RequestBudget(ticks, source, m);
        }
    }

    /// <summary>Milliseconds left at <paramref name="now"/> (negative once passed); null without a budget.</summary>
    public double? RemainingMs(TimeProvider time, long now) =>
        HasDeadline ? (Deadline - now) * 1000.0 / time.TimestampFrequency : null;

    /// <summary>The name of the limit in messages.</summary>
    public string Describe() => Source switch
    {
        BudgetSource.Slo => "effserve.slo_ms",
        BudgetSource.GrpcDeadline => "the gRPC deadline",
        BudgetSource.Timeout => "the timeout parameter",
        _ => "no budget",
    };
}
