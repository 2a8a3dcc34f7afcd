using System.Diagnostics;
using OpenTelemetry.Trace;

namespace EffServe.ServiceDefaults;

/// <summary>
/// EffServe's sampler: a call that arrives with a parent follows the parent's decision; a new trace is
/// recorded with the configured ratio; and an outgoing call that would start a trace of its own is
/// background work (the gateway's health probes of its replicas), which is not traced at all.
/// </summary>
public sealed class TelemetrySampler : Sampler
{
    private readonly Sampler _inner;

    public TelemetrySampler(double ratio)
    {
        _inner = new ParentBasedSampler(new TraceIdRatioBasedSampler(ratio));
        Description = $"EffServe(ratio {ratio}, no root client spans)";
    }

    public override SamplingResult ShouldSample(in SamplingParameters samplingParameters)
    {
        if (samplingParameters.Kind == ActivityKind.Client && samplingParameters.ParentContext.TraceId == default)
        {
            return new SamplingResult(SamplingDecision.Drop);
        }

        return _inner.ShouldSample(samplingParameters);
    }
}
