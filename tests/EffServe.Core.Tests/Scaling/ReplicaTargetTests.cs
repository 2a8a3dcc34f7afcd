using EffServe.Core.Scaling;

namespace EffServe.Core.Tests.Scaling;

public sealed class ReplicaTargetTests
{
    private static readonly ScalingPolicy s_policy = new() { MinReplicas = 1, MaxReplicas = 20, TargetUtilisation = 0.8 };

    [Fact]
    public void Desired_WorkedExample_DividesLoadByPlannedCapacityAndRoundsUp()
    {
        // docs/autoscaling.md: 1,000 req/s offered, 300 req/s per replica, planned at 80% → 240 → 4.17 → 5.
        Assert.Equal(5, ReplicaTarget.Desired(new ScalingSignal(1000, 300, 2), s_policy));
    }

    [Theory]
    [InlineData(240.0, 300.0, 1)]   // exactly one replica at the target
    [InlineData(240.1, 300.0, 2)]   // a little more needs a second
    [InlineData(480.0, 300.0, 2)]
    [InlineData(0.5, 300.0, 1)]     // a trickle still needs one
    public void Desired_RoundsUpToWholeReplicas(double load, double capacity, int expected)
    {
        Assert.Equal(expected, ReplicaTarget.Desired(new ScalingSignal(load, capacity, 3), s_policy));
    }

    [Fact]
    public void Desired_ExactMultipleWithFloatingPointNoise_DoesNotAddAReplica()
    {
        // 0.3 × 0.8 is 0.24000000000000002 in binary floating point; 0.72 / that is a hair under 3.
        var policy = s_policy with { TargetUtilisation = 0.8 };
        Assert.Equal(3, ReplicaTarget.Desired(new ScalingSignal(0.72, 0.3, 1), policy));
    }

    [Fact]
    public void Desired_AboveMaximum_ClampsToMax()
    {
        Assert.Equal(20, ReplicaTarget.Desired(new ScalingSignal(1e9, 300, 4), s_policy));
    }

    [Fact]
    public void Desired_NoLoad_ScalesToMinimum()
    {
        var policy = s_policy with { MinReplicas = 2 };
        Assert.Equal(2, ReplicaTarget.Desired(new ScalingSignal(0, 300, 7), policy));
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(-1.0)]
    [InlineData(double.NaN)]
    [InlineData(double.PositiveInfinity)]
    public void Desired_CapacityUnknown_KeepsCurrentReplicas(double capacity)
    {
        Assert.Equal(4, ReplicaTarget.Desired(new ScalingSignal(500, capacity, 4), s_policy));
        Assert.Equal(4, ReplicaTarget.Desired(new ScalingSignal(0, capacity, 4), s_policy));
    }

    [Fact]
    public void Desired_CapacityUnknownAndCurrentOutsideBounds_ClampsTheCurrentCount()
    {
        Assert.Equal(1, ReplicaTarget.Desired(new ScalingSignal(500, 0, 0), s_policy));
        Assert.Equal(20, ReplicaTarget.Desired(new ScalingSignal(500, 0, 30), s_policy));
    }

    [Fact]
    public void Desired_TargetUtilisationOne_UsesFullCapacity()
    {
        var policy = s_policy with { TargetUtilisation = 1.0 };
        Assert.Equal(4, ReplicaTarget.Desired(new ScalingSignal(1000, 250, 1), policy));
    }

    [Theory]
    [InlineData(-1.0)]
    [InlineData(double.NaN)]
    public void Desired_BadLoad_Throws(double load)
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => ReplicaTarget.Desired(new ScalingSignal(load, 300, 1), s_policy));
        Assert.Contains("Offered load must be a non-negative number", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Desired_BadPolicy_ThrowsNamingEverySetting()
    {
        var policy = new ScalingPolicy { MinReplicas = 0, MaxReplicas = -1, TargetUtilisation = 1.5, ScaleDownStabilisation = TimeSpan.FromSeconds(-1) };

        var e = Assert.Throws<ArgumentException>(() => ReplicaTarget.Desired(new ScalingSignal(1, 1, 1), policy));

        Assert.Contains("MinReplicas is 0", e.Message, StringComparison.Ordinal);
        Assert.Contains("MaxReplicas (-1) is below MinReplicas (0)", e.Message, StringComparison.Ordinal);
        Assert.Contains("TargetUtilisation is 1.5", e.Message, StringComparison.Ordinal);
        Assert.Contains("ScaleDownStabilisation", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Problems_DefaultPolicy_IsEmpty()
    {
        Assert.Empty(new ScalingPolicy().Problems());
    }
}

public sealed class ScaleDownStabiliserTests
{
    private static TimeSpan At(int seconds) => TimeSpan.FromSeconds(seconds);

    [Fact]
    public void Recommend_ScaleUp_IsImmediate()
    {
        var stabiliser = new ScaleDownStabiliser(TimeSpan.FromMinutes(5));
        Assert.Equal(2, stabiliser.Recommend(2, At(0)));
        Assert.Equal(6, stabiliser.Recommend(6, At(15)));
    }

    [Fact]
    public void Recommend_ScaleDown_WaitsForTheWholeWindow()
    {
        var stabiliser = new ScaleDownStabiliser(TimeSpan.FromSeconds(60));
        Assert.Equal(6, stabiliser.Recommend(6, At(0)));
        Assert.Equal(6, stabiliser.Recommend(2, At(15)));
        Assert.Equal(6, stabiliser.Recommend(2, At(60)));
        Assert.Equal(2, stabiliser.Recommend(2, At(61))); // the 6 made at 0 s has left the window
    }

    [Fact]
    public void Recommend_ABriefDip_DoesNotRemoveReplicas()
    {
        var stabiliser = new ScaleDownStabiliser(TimeSpan.FromSeconds(60));
        stabiliser.Recommend(5, At(0));
        stabiliser.Recommend(1, At(30));
        Assert.Equal(5, stabiliser.Recommend(5, At(45)));
        Assert.Equal(5, stabiliser.Recommend(1, At(100))); // the 5 at 45 s still counts
        Assert.Equal(3, stabiliser.Recommend(3, At(106)));
    }

    [Fact]
    public void Recommend_ZeroWindow_FollowsEveryRecommendation()
    {
        var stabiliser = new ScaleDownStabiliser(TimeSpan.Zero);
        Assert.Equal(6, stabiliser.Recommend(6, At(0)));
        Assert.Equal(2, stabiliser.Recommend(2, At(1)));
    }
}
