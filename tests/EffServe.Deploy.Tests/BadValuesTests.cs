using EffServe.Deploy.Tests.Support;

namespace EffServe.Deploy.Tests;

/// <summary>Values with a mistake fail to render, with a message that says what to change.</summary>
public sealed class BadValuesTests
{
    private static async Task<string> RenderFailsAsync(string badValues)
    {
        var result = await Tools.TemplateAsync([Path.Combine(Tools.TestDir, "bad-values", badValues)]);
        Assert.NotEqual(0, result.ExitCode);
        return result.All;
    }

    [Fact]
    public async Task GpuModelWithoutGpuPool_Fails()
    {
        var error = await RenderFailsAsync("gpu-without-pool.yaml");

        Assert.Contains("models.shapes runs on the gpu pool but there is no GPU pool: set pools.gpu.enabled=true and pools.gpu.nodeSelector", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task GpuPoolWithoutNodeSelector_Fails()
    {
        var error = await RenderFailsAsync("gpu-pool-without-nodes.yaml");

        Assert.Contains("pools.gpu.enabled is true but pools.gpu.nodeSelector is empty", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ModelWithoutZooPath_Fails()
    {
        var error = await RenderFailsAsync("model-without-zoo-path.yaml");

        Assert.Contains("models.resnet18 has no zoo path; set models.resnet18.zoo.path", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task GpusOnCpuPool_Fails()
    {
        var error = await RenderFailsAsync("gpus-on-cpu-pool.yaml");

        Assert.Contains("models.digits asks for 1 GPUs on the cpu pool", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task MisspeltSetting_FailsTheSchema()
    {
        var error = await RenderFailsAsync("misspelt-setting.yaml");

        Assert.Contains("models.digits: Additional property replica is not allowed", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AutoscalingMaxBelowMin_Fails()
    {
        var error = await RenderFailsAsync("autoscaling-bounds.yaml");

        Assert.Contains("models.digits.autoscaling.maxReplicas (2) is below minReplicas (5)", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ModelNameNotADnsLabel_Fails()
    {
        var error = await RenderFailsAsync("model-name-not-a-dns-label.yaml");

        Assert.Contains("models.My_Model: a model's key must be a DNS label", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task UnknownAutoscalerKind_FailsTheSchema()
    {
        var result = await Tools.TemplateAsync([], "autoscaling.enabled=true", "autoscaling.kind=vpa");

        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("autoscaling.kind", result.All, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("ingress.hosts[0].paths[0].path=api", "path")]
    [InlineData("ingress.hosts[0].paths[0].pathType=Anything", "pathType")]
    [InlineData("gateway.extraContainers[0].name=sidecar", "image")]
    [InlineData("modelDefaults.extraVolumeMounts[0].name=cache", "mountPath")]
    [InlineData("gateway.extraVolumes[0].emptyDir.medium=Memory", "name")]
    [InlineData("gateway.topologySpreadConstraints[0].maxSkew=1", "topologyKey")]
    [InlineData("models.digits.topologySpreadConstraints[0].whenUnsatisfiable=Never", "whenUnsatisfiable")]
    [InlineData("imagePullSecrets[0].secret=regcred", "name")]
    [InlineData("image.pullPolicy=Sometimes", "image.pullPolicy")]
    [InlineData("tests.timeoutSeconds=0", "tests.timeoutSeconds")]
    [InlineData("serviceAccount.annotations.a=1", "serviceAccount.annotations.a")]
    [InlineData("podLabels.tier=1", "podLabels.tier")]
    [InlineData("ingress.tlss[0].secretName=x", "tlss")]
    public async Task BadPodExtraOrIngressValue_FailsTheSchema(string set, string named)
    {
        var result = await Tools.TemplateAsync([], set);

        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("don't meet the specifications of the schema", result.All, StringComparison.Ordinal);
        Assert.Contains(named, result.All, StringComparison.Ordinal);
    }
}
