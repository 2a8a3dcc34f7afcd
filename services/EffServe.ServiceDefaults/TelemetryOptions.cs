using Microsoft.Extensions.Options;

namespace EffServe.ServiceDefaults;

/// <summary>Configuration section EffServe:Telemetry.</summary>
public sealed class TelemetryOptions
{
    public const string SectionName = "EffServe:Telemetry";

    /// <summary>
    /// Records traces and metrics. Off, the process registers no OpenTelemetry at all: no listener,
    /// so no span or measurement is even created (the overhead benchmark's baseline).
    /// </summary>
    public bool Enabled { get; set; } = true;

    /// <summary>
    /// Where Prometheus scrapes <c>/metrics</c>: an HTTP/1.1 address such as http://127.0.0.1:9464,
    /// apart from the gRPC port (which speaks HTTP/2 only). Empty: no scrape listener. Port 0 takes a free port.
    /// </summary>
    public string MetricsUrl { get; set; } = "";

    /// <summary>
    /// Whether spans are made: <see cref="TraceMode.Auto"/> (the default) only when OTLP export is
    /// configured (OTEL_EXPORTER_OTLP_ENDPOINT is set), since spans
    /// nobody exports are pure cost; <see cref="TraceMode.On"/> always (for exporters a host adds
    /// itself); <see cref="TraceMode.Off"/> never.
    /// </summary>
    public TraceMode Traces { get; set; } = TraceMode.Auto;

    /// <summary>Share of new traces recorded (0–1); a call that arrives with a sampled parent is always recorded.</summary>
    public double TraceSampleRatio { get; set; } = 1.0;

    /// <summary>The service.name resource attribute; empty: OTEL_SERVICE_NAME, else the host's own name.</summary>
    public string ServiceName { get; set; } = "";
}

/// <summary>
/// What a host's telemetry resolved to at start-up, for the parts that act on it: whether it makes
/// spans (a tracer exists).
/// </summary>
public sealed record TelemetryWiring(bool Traces);

/// <summary>When a host makes spans.</summary>
public enum TraceMode
{
    /// <summary>When OTLP export is configured (OTEL_EXPORTER_OTLP_ENDPOINT).</summary>
    Auto,

    /// <summary>Always.</summary>
    On,

    /// <summary>Never.</summary>
    Off,
}

internal sealed class TelemetryOptionsValidator : IValidateOptions<TelemetryOptions>
{
    public ValidateOptionsResult Validate(string? name, TelemetryOptions options)
    {
        const string P = TelemetryOptions.SectionName;
        var failures = new List<string>();
        if (options.MetricsUrl.Length > 0 && !MetricsListener.TryParse(options.MetricsUrl, out _, out var problem))
        {
            failures.Add($"{P}:MetricsUrl is '{options.MetricsUrl}': {problem}");
        }

        if (!double.IsFinite(options.TraceSampleRatio) || options.TraceSampleRatio is < 0 or > 1)
        {
            failures.Add($"{P}:TraceSampleRatio is {options.TraceSampleRatio}; it lies in [0, 1].");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
