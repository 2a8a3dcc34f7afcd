using System.Globalization;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace EffServe.ServiceDefaults;

/// <summary>
/// The gRPC status a call was answered with, read where the server wrote it: the response headers
/// for a trailers-only answer (every error raised before a message), the trailers otherwise. Both
/// the server spans and the gateway's own metric read it here.
/// </summary>
public static class GrpcCallStatus
{
    /// <summary>The <c>grpc-status</c> the response carried (<c>"0"</c> … <c>"16"</c>), or null when it carried none.</summary>
    public static string? Read(HttpContext context)
    {
        var status = context.Response.Headers["grpc-status"].ToString();
        if (status.Length == 0 && context.Features.Get<IHttpResponseTrailersFeature>()?.Trailers is { } trailers)
        {
            status = trailers["grpc-status"].ToString();
        }

        return status.Length is > 0 and <= 2 && int.TryParse(status, NumberStyles.None, CultureInfo.InvariantCulture, out var code) && code is >= 0 and <= 16 ? status : null;
    }

    /// <summary>
    /// Whether a server span answered with <paramref name="code"/> is an error by OpenTelemetry's RPC
    /// conventions: UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE and DATA_LOSS.
    /// The others (NOT_FOUND, INVALID_ARGUMENT, …) are the caller's error and leave the span unset.
    /// </summary>
    public static bool IsServerError(int code) => code is 2 or 4 or 12 or 13 or 14 or 15;

    /// <summary>The status's name, as the span status description: <c>DEADLINE_EXCEEDED</c> ….</summary>
    public static string Name(int code) => code switch
    {
        0 => "OK",
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => "UNKNOWN",
    };
}
