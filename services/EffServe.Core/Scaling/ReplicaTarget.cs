namespace EffServe.Core.Scaling;

/// <summary>What an autoscaler knows about one model at one moment.</summary>
/// <param name="OfferedLoad">Requests per second offered to the model, summed over its replicas (<c>effserve_load_per_second</c>).</param>
/// <param name="CapacityPerReplica">
/// Requests per second one replica can take within its SLO (<c>effserve_capacity_per_second</c>,
/// averaged over the replicas that report one); 0 or less when no replica has measured it yet.
/// </param>
/// <param name="CurrentReplicas">Replicas running now.</param>
public readonly record struct ScalingSignal(double OfferedLoad, double CapacityPerReplica, int CurrentReplicas);

/// <summary>Bounds and target of one model's autoscaling.</summary>
public sealed record ScalingPolicy
{
    /// <summary>Fewest replicas, at least 1 (a model without a replica cannot measure its capacity).</summary>
    public int MinReplicas { get; init; } = 1;

    public int MaxReplicas { get; init; } = 10;

    /// <summary>Share of each replica's capacity to plan for, in (0, 1]: headroom for bursts and for the latency model's error.</summary>
    public double TargetUtilisation { get; init; } = 0.8;

    /// <summary>How long a lower recommendation must persist before replicas are removed (0: at once).</summary>
    public TimeSpan ScaleDownStabilisation { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>Every problem with the policy, each naming its setting; empty when it is usable.</summary>
    public IReadOnlyList<string> Problems()
    {
        var problems = new List<string>();
        if (MinReplicas < 1)
        {
            problems.Add($"MinReplicas is {MinReplicas}; it must be at least 1.");
        }

        if (MaxReplicas < MinReplicas)
        {
            problems.Add($"MaxReplicas ({MaxReplicas}) is below MinReplicas ({MinReplicas}).");
        }

        if (!(TargetUtilisation > 0 && TargetUtilisation <= 1))
        {
            problems.Add($"TargetUtilisation is {TargetUtilisation}; it must be in (0, 1].");
        }

        if (ScaleDownStabilisation < TimeSpan.Zero)
        {
            problems.Add($"ScaleDownStabilisation is {ScaleDownStabilisation}; it cannot be negative.");
        }

        return problems;
    }
}

/// <summary>
/// The replica count a model needs: desired = ⌈offered load ÷ (capacity per replica × target
/// utilisation)⌉, clamped to [min, max]. The Helm chart's KEDA and HPA queries compute the same
/// expression from the exported metrics (docs/autoscaling.md).
/// </summary>
public static class ReplicaTarget
{
    /// <summary>
    /// Replicas wanted for <paramref name="signal"/>. No load wants the minimum. With no measured
    /// capacity (no replica has finished a run yet) the current count is kept: there is nothing to
    /// divide by, and guessing would flap.
    /// </summary>
    public static int Desired(ScalingSignal signal, ScalingPolicy policy)
    {
        ArgumentNullException.ThrowIfNull(policy);
        var problems = policy.Problems();
        if (problems.Count > 0)
        {
            throw new ArgumentException(string.Join(" ", problems), nameof(policy));
        }

        if (double.IsNaN(signal.OfferedLoad) || signal.OfferedLoad < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(signal), signal.OfferedLoad, "Offered load must be a non-negative number of requests per second.");
        }

        if (!(signal.CapacityPerReplica > 0) || double.IsInfinity(signal.CapacityPerReplica))
        {
            return Clamp(signal.CurrentReplicas, policy);
        }

        var replicas = signal.OfferedLoad / (signal.CapacityPerReplica * policy.TargetUtilisation);
        // A hair above an integer is floating-point noise, not a reason to add a replica.
        var rounded = Math.Ceiling(replicas - 1e-9);
        return rounded >= policy.MaxReplicas ? policy.MaxReplicas : Clamp((int)rounded, policy);
    }

    private static int Clamp(int replicas, ScalingPolicy policy) => Math.Clamp(replicas, policy.MinReplicas, policy.MaxReplicas);
}

/// <summary>
/// Scale-down stabilisation as the Kubernetes HPA does it: the recommendation acted on is the highest
/// of those made within the window, so replicas are added at once and removed only once the lower
/// count has held for the whole window. Not thread-safe: one per model, fed by one loop.
/// </summary>
public sealed class ScaleDownStabiliser(TimeSpan window)
{
    private readonly Queue<(TimeSpan At, int Replicas)> _recent = new();

    /// <summary>Records <paramref name="desired"/> made at <paramref name="now"/> (monotonic) and returns the count to scale to.</summary>
    public int Recommend(int desired, TimeSpan now)
    {
        while (_recent.Count > 0 && now - _recent.Peek().At > window)
        {
            _recent.Dequeue();
        }

        _recent.Enqueue((now, desired));
        var highest = desired;
        foreach (var (_, replicas) in _recent)
        {
            highest = Math.Max(highest, replicas);
        }

        return highest;
    }
}
