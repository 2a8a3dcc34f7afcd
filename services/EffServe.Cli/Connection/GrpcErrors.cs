using System.Net.Http;
using System.Net.Sockets;
using System.Text;
using Grpc.Core;

namespace EffServe.Cli.Connection;

/// <summary>
/// Turns gRPC failures into one line a person can act on and the exit code scripts can test.
/// </summary>
public static class GrpcErrors
{
    // HTTP/2's HTTP_1_1_REQUIRED: the server refuses HTTP/2 on that connection (a plaintext Kestrel
    // endpoint left at its default, Http1AndHttp2, cannot negotiate h2c).
    private const long Http11RequiredErrorCode = 0xd;

    /// <summary>The canonical gRPC name of a status code: NOT_FOUND, DEADLINE_EXCEEDED ...</summary>
    public static string CanonicalName(StatusCode code)
    {
        if (code == StatusCode.OK)
        {
            return "OK";
        }

        var name = code.ToString();
        var builder = new StringBuilder(name.Length + 4);
        for (var i = 0; i < name.Length; i++)
        {
            if (i > 0 && char.IsUpper(name[i]))
            {
                builder.Append('_');
            }

            builder.Append(char.ToUpperInvariant(name[i]));
        }

        return builder.ToString();
    }

    /// <summary>
    /// Whether the call failed before reaching a server: connection refused, unknown host, a TLS
    /// or HTTP/2 handshake that did not happen.
    /// </summary>
    public static bool IsUnreachable(RpcException exception) =>
        exception.StatusCode == StatusCode.Unavailable &&
        (Find<SocketException>(exception.Status.DebugException) is not null ||
         Find<HttpRequestException>(exception.Status.DebugException) is not null);

    /// <summary>One line describing the failure of a call to <paramref name="endpoint"/>.</summary>
    public static string Describe(RpcException exception, Uri endpoint)
    {
        var address = Endpoint.Display(endpoint);
        if (NotHttp2(exception) is { } why)
        {
            return $"{address} does not speak HTTP/2 on this connection, which gRPC needs ({why}). For plaintext http:// the server must accept HTTP/2 without TLS (h2c; Kestrel: Protocols = Http2); otherwise use https://.";
        }

        if (IsUnreachable(exception))
        {
            var cause = Find<SocketException>(exception.Status.DebugException)?.Message
                ?? Find<HttpRequestException>(exception.Status.DebugException)?.Message
                ?? exception.Status.Detail;
            return $"cannot reach {address}: {OneLine(cause)} (is the server running, and is it the right address? set --endpoint or {Endpoint.EnvironmentVariable})";
        }

        var detail = string.IsNullOrWhiteSpace(exception.Status.Detail) ? "(the server gave no message)" : OneLine(exception.Status.Detail);
        return $"{CanonicalName(exception.StatusCode)} from {address}: {detail}";
    }

    /// <summary>The exit code for a failed call.</summary>
    public static int ExitCodeOf(RpcException exception) => exception.StatusCode switch
    {
        StatusCode.NotFound => ExitCodes.NotFound,
        StatusCode.InvalidArgument or StatusCode.OutOfRange or StatusCode.FailedPrecondition => ExitCodes.InvalidInput,
        StatusCode.Unimplemented => ExitCodes.Unsupported,
        StatusCode.Cancelled => ExitCodes.Cancelled,
        _ => ExitCodes.ServerError,
    };

    /// <summary>
    /// Why the connection did not become HTTP/2, when that is why the call failed: the server
    /// refused with HTTP_1_1_REQUIRED, or answered the HTTP/2 preface in HTTP/1.1.
    /// </summary>
    private static string? NotHttp2(RpcException exception)
    {
        if (Find<HttpProtocolException>(exception.Status.DebugException) is { } protocol)
        {
            return protocol.ErrorCode == Http11RequiredErrorCode ? "HTTP_1_1_REQUIRED" : null;
        }

        return Find<HttpRequestException>(exception.Status.DebugException) is { HttpRequestError: HttpRequestError.HttpProtocolError } request &&
            request.Message.Contains("HTTP/2", StringComparison.Ordinal)
            ? OneLine(request.Message).TrimEnd('.')
            : null;
    }

    private static T? Find<T>(Exception? exception)
        where T : Exception
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            if (e is T match)
            {
                return match;
            }
        }

        return null;
    }

    private static string OneLine(string text) =>
        string.Join(' ', text.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
}
