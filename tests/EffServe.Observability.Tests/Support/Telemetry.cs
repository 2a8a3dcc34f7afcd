using System.Diagnostics;
using EffServe.ServiceDefaults;
using EffServe.ServiceDefaults.Instrumentation;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;

namespace EffServe.Observability.Tests.Support;

/// <summary>
/// Catches what the servers of a test emit: a tracer and a meter provider with OpenTelemetry's
/// in-memory exporters, listening to the sources and meters EffServe's hosts record (their own
/// providers have no exporter in tests). Activity and meter listeners are process-wide, so the
/// tests that start servers run one at a time (<see cref="OneServerAtATime"/>) and each one
/// reads only its own trace.
/// </summary>
internal sealed class Telemetry : IDisposable
{
    /// <summary>The source of the spans the tests start as the caller.</summary>
    public static readonly ActivitySource Caller = new("EffServe.Tests.Caller");

    private readonly TracerProvider _tracer;
    private readonly MeterProvider _meter;

    public Telemetry()
    {
        _tracer = Sdk.CreateTracerProviderBuilder()
            .SetSampler(new TelemetrySampler(1.0))
            .AddSource(Caller.Name, "Microsoft.AspNetCore", "System.Net.Http", "Grpc.Net.Client", "Yarp.ReverseProxy", InferenceInstrumentation.Name)
            .AddInMemoryExporter(Spans)
            .Build()!;
        _meter = Sdk.CreateMeterProviderBuilder()
            .AddMeter(InferenceInstrumentation.Name)
            .AddInMemoryExporter(Metrics)
            .Build()!;
    }

    public List<Activity> Spans { get; } = [];

    public List<MetricSnapshot> Metrics { get; } = [];

    /// <summary>The spans of one trace, once every span ended has been exported.</summary>
    public IReadOnlyList<Activity> Trace(ActivityTraceId trace)
    {
        _tracer.ForceFlush();
        lock (Spans)
        {
            return Spans.Where(s => s.TraceId == trace).ToList();
        }
    }

    /// <summary>
    /// The spans of one trace once <paramref name="complete"/> holds for them: a server span ends
    /// after its response has gone, so the caller can be back before the last spans are exported.
    /// Gives up after 10 s and returns what there is, for the assertions to explain.
    /// </summary>
    public async Task<IReadOnlyList<Activity>> TraceAsync(ActivityTraceId trace, Func<IReadOnlyList<Activity>, bool> complete)
    {
        var clock = TimeProvider.System;
        var giveUpAt = clock.GetUtcNow().AddSeconds(10);
        while (true)
        {
            var spans = Trace(trace);
            if (complete(spans) || clock.GetUtcNow() > giveUpAt)
            {
                return spans;
            }

            await Task.Delay(20, TestContext.Current.CancellationToken);
        }
    }

    /// <summary>Every span exported so far, once <paramref name="complete"/> holds for them (or after 10 s).</summary>
    public async Task<IReadOnlyList<Activity>> AllSpansAsync(Func<IReadOnlyList<Activity>, bool> complete)
    {
        var clock = TimeProvider.System;
        var giveUpAt = clock.GetUtcNow().AddSeconds(10);
        while (true)
        {
            var spans = AllSpans();
            if (complete(spans) || clock.GetUtcNow() > giveUpAt)
            {
                return spans;
            }

            await Task.Delay(20, TestContext.Current.CancellationToken);
        }
    }

    /// <summary>Every span exported so far.</summary>
    public IReadOnlyList<Activity> AllSpans()
    {
        _tracer.ForceFlush();
        lock (Spans)
        {
            return [.. Spans];
        }
    }

    /// <summary>Collects now and returns the latest snapshot of each metric by name.</summary>
    public IReadOnlyDictionary<string, MetricSnapshot> CollectMetrics()
    {
        Metrics.Clear();
        _meter.ForceFlush();
        return Metrics.GroupBy(m => m.Name).ToDictionary(g => g.Key, g => g.Last(), StringComparer.Ordinal);
    }

    public void Dispose()
    {
        _tracer.Dispose();
        _meter.Dispose();
    }
}

/// <summary>Tests that start servers and listen to the process's telemetry run one at a time.</summary>
[CollectionDefinition(nameof(OneServerAtATime), DisableParallelization = true)]
public sealed class OneServerAtATime;
