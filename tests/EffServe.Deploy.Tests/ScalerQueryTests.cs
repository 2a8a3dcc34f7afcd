using EffServe.Core.Scaling;
using EffServe.Deploy.Tests.Support;

namespace EffServe.Deploy.Tests;

/// <summary>The chart's KEDA query computes what EffServe.Core.Scaling.ReplicaTarget computes.</summary>
public sealed class ScalerQueryTests
{
    [Fact]
    public async Task KedaTrigger_IsLoadOverCapacityWithTheTargetAsThreshold()
    {
        var manifest = Manifest.Parse((await Tools.TemplateAsync([Path.Combine(Tools.Chart, "ci", "autoscaling-keda-values.yaml")])).Output);

        var trigger = manifest.Find("ScaledObject", "effserve-digits")!["spec"]!["triggers"]![0]!;

        const string Sel = "model=\"digits\",namespace=\"effserve\"";
        Assert.Equal(
            $"sum(effserve_load_per_second{{{Sel}}}) / avg(effserve_capacity_per_second{{{Sel}}} > 0) or on() (count(effserve_load_per_second{{{Sel}}}) * 0.7)",
            (string?)trigger["metadata"]!["query"]);
        Assert.Equal("0.7", (string?)trigger["metadata"]!["threshold"]);
        Assert.Equal("AverageValue", (string?)trigger["metricType"]);
    }

    public static TheoryData<double[], double[]> Replicas => new()
    {
        { [400, 350, 250], [300, 310, 290] },   // busy: 1,000 req/s on three replicas
        { [10, 5], [300, 300] },                // quiet
        { [0, 0], [300, 300] },                 // idle
        { [120, 80], [0, 300] },                // one replica has not measured yet
        { [120, 80], [0, 0] },                  // none has: hold
        { [9000], [200] },                      // beyond the maximum
    };

    [Theory]
    [MemberData(nameof(Replicas))]
    public void Query_AsTheAutoscalerUsesIt_EqualsReplicaTarget(double[] load, double[] capacity)
    {
        var policy = new ScalingPolicy { MinReplicas = 2, MaxReplicas = 20, TargetUtilisation = 0.7 };

        // PromQL: Σ load / avg(capacity > 0), or, with no capacity above 0, count × target.
        var measured = capacity.Where(c => c > 0).ToArray();
        var value = measured.Length > 0 ? load.Sum() / measured.Average() : load.Length * policy.TargetUtilisation;
        // KEDA's AverageValue target makes the HPA want ⌈value ÷ threshold⌉ replicas, within its bounds.
        var hpa = Math.Clamp((int)Math.Ceiling((value / policy.TargetUtilisation) - 1e-9), policy.MinReplicas, policy.MaxReplicas);

        var signal = new ScalingSignal(load.Sum(), measured.Length > 0 ? measured.Average() : 0, load.Length);
        Assert.Equal(ReplicaTarget.Desired(signal, policy), hpa);
    }
}
