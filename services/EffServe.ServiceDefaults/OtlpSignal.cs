using System.Globalization;
using Microsoft.Extensions.Configuration;
using OpenTelemetry.Exporter;

namespace EffServe.ServiceDefaults;

/// <summary>
/// The per-signal OTLP variables (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT and the like), which the
/// exporter a host adds per signal does not read itself: each one set overrides the shared
/// OTEL_EXPORTER_OTLP_* value for its signal. A signal's own endpoint is used as given (no
/// <c>/v1/traces</c> is appended), as the OTLP specification says.
/// </summary>
public static class OtlpSignal
{
    public const string Traces = "TRACES";
    public const string Metrics = "METRICS";
    public const string Logs = "LOGS";

    /// <summary>Applies the variables of <paramref name="signal"/> (TRACES, METRICS or LOGS) that are set to <paramref name="options"/>.</summary>
    public static void Apply(OtlpExporterOptions options, IConfiguration configuration, string signal)
    {
        string? Value(string name) => configuration[$"OTEL_EXPORTER_OTLP_{signal}_{name}"] is { Length: > 0 } v ? v.Trim() : null;

        if (Value("PROTOCOL") is { } protocol)
        {
            options.Protocol = protocol switch
            {
                "grpc" => OtlpExportProtocol.Grpc,
                "http/protobuf" => OtlpExportProtocol.HttpProtobuf,
                _ => throw new InvalidOperationException($"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL is '{protocol}'; use grpc or http/protobuf."),
            };
        }

        if (Value("ENDPOINT") is { } endpoint)
        {
            options.Endpoint = Uri.TryCreate(endpoint, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps)
                ? uri
                : throw new InvalidOperationException($"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT is '{endpoint}', not an absolute http:// or https:// URL.");
        }

        if (Value("HEADERS") is { } headers)
        {
            options.Headers = headers;
        }

        if (Value("TIMEOUT") is { } timeout)
        {
            options.TimeoutMilliseconds = int.TryParse(timeout, NumberStyles.None, CultureInfo.InvariantCulture, out var ms) && ms > 0
                ? ms
                : throw new InvalidOperationException($"OTEL_EXPORTER_OTLP_{signal}_TIMEOUT is '{timeout}'; use a positive number of milliseconds.");
        }
    }
}
