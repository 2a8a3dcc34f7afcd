using EffServe.ServiceDefaults;

namespace EffServe.Observability.Tests;

/// <summary>Where metrics go when OTLP export is configured: one reader by default, as told by OTEL_METRICS_EXPORTER otherwise.</summary>
public sealed class MetricsExportTests
{
    [Theory]
    [InlineData(null, false, true)]
    [InlineData("", false, true)]
    [InlineData(null, true, false)]
    [InlineData("otlp", true, true)]
    [InlineData("prometheus, OTLP", true, true)]
    [InlineData("prometheus", true, false)]
    [InlineData("none", false, false)]
    [InlineData("prometheus", false, false)]
    public void OtlpMetrics_FollowTheEnvironmentElseAvoidASecondReader(string? exporters, bool prometheus, bool expected)
    {
        Assert.Equal(expected, ServiceDefaultsExtensions.OtlpMetricsWanted(exporters, prometheus));
    }
}
