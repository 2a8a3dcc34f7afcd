using System.Globalization;
using System.Text;
using Grpc.Core;

namespace EffServe.Gateway.Forwarding;

/// <summary>Answers a call with a gRPC status from the gateway itself (a trailers-only response).</summary>
internal static class GrpcResponses
{
    public static Task WriteErrorAsync(HttpContext context, StatusCode code, string message, TimeSpan? retryAfter = null)
    {
        var response = context.Response;
        if (response.HasStarted)
        {
            // Too late for a status of our own: abort the stream so the client sees the failure.
            context.Abort();
            return Task.CompletedTask;
        }

        response.Clear();
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = "application/grpc";
        response.Headers["grpc-status"] = ((int)code).ToString(CultureInfo.InvariantCulture);
        response.Headers["grpc-message"] = PercentEncode(message);
        if (retryAfter is { } after)
        {
            // gRPC's retry pushback, in milliseconds, and the plain HTTP hint.
            response.Headers["grpc-retry-pushback-ms"] = ((long)after.TotalMilliseconds).ToString(CultureInfo.InvariantCulture);
            response.Headers["retry-after"] = Math.Max(1, (long)Math.Ceiling(after.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
        }

        return Task.CompletedTask;
    }

    /// <summary>grpc-message is percent-encoded UTF-8: printable ASCII passes, everything else (and '%') is escaped.</summary>
    internal static string PercentEncode(string message)
    {
        var bytes = Encoding.UTF8.GetBytes(message);
        var builder = new StringBuilder(bytes.Length);
        foreach (var b in bytes)
        {
            if (b is >= 0x20 and <= 0x7E && b != (byte)'%')
            {
                builder.Append((char)b);
            }
            else
            {
                builder.Append('%').Append(b.ToString("X2", CultureInfo.InvariantCulture));
            }
        }

        return builder.ToString();
    }
}
