using System.Diagnostics;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;

namespace EffServe.ServiceDefaults;

/// <summary>
/// Shapes ASP.NET Core's own server span (activity source <c>Microsoft.AspNetCore</c>) at the very
/// start of the pipeline: calls that are not traced (health, reflection, metrics) are unmarked as
/// recorded, so they and everything under them are dropped; traced ones are named after their gRPC
/// method and given the gRPC attributes of the semantic conventions, and once answered the gRPC
/// status (<c>rpc.grpc.status_code</c>, and the span status Error for a server's errors). This
/// replaces OpenTelemetry's ASP.NET Core instrumentation package, whose per-request event handling
/// cost several microseconds a call in the overhead benchmark — a tenth of a small model's whole
/// request.
/// </summary>
internal sealed class ServerSpans : IStartupFilter
{
    public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
    {
        app.Use(static (context, nextMiddleware) =>
        {
            if (Activity.Current is { } activity && activity.Kind == ActivityKind.Server && activity.IsAllDataRequested && Shape(activity, context))
            {
                return Traced(activity, context, nextMiddleware);
            }

            return nextMiddleware(context);
        });
        next(app);
    };

    /// <summary>
    /// Gives a traced call's span the gRPC status it was answered with (<c>rpc.grpc.status_code</c>),
    /// and the Error status for the codes OpenTelemetry's RPC conventions count as a server's error.
    /// </summary>
    private static void Complete(Activity activity, HttpContext context)
    {
        if (GrpcCallStatus.Read(context) is not { } status)
        {
            // No gRPC status at all: the pipeline failed before gRPC answered (an HTTP error).
            if (context.Response.StatusCode >= StatusCodes.Status500InternalServerError)
            {
                activity.SetStatus(ActivityStatusCode.Error);
            }

            return;
        }

        var code = int.Parse(status, System.Globalization.CultureInfo.InvariantCulture);
        activity.SetTag("rpc.grpc.status_code", code);
        if (GrpcCallStatus.IsServerError(code))
        {
            activity.SetStatus(ActivityStatusCode.Error, GrpcCallStatus.Name(code));
        }
    }

    private static async Task Traced(Activity activity, HttpContext context, RequestDelegate next)
    {
        try
        {
            await next(context).ConfigureAwait(false);
        }
        finally
        {
            Complete(activity, context);
        }
    }

    /// <summary>Drops a span that has started: not recorded, so neither it nor anything under it is exported.</summary>
    public static void Untrace(Activity activity)
    {
        activity.IsAllDataRequested = false;
        activity.ActivityTraceFlags &= ~ActivityTraceFlags.Recorded;
    }

    /// <summary>Names and tags a server span; false when the call is not traced (and the span dropped).</summary>
    private static bool Shape(Activity activity, HttpContext context)
    {
        var path = context.Request.Path;
        if (!ServiceDefaultsExtensions.IsTraced(path))
        {
            Untrace(activity);
            return false;
        }

        // A gRPC path is /package.Service/Method.
        var value = path.Value!;
        var slash = value.IndexOf('/', 1);
        activity.DisplayName = value.Length > 1 ? value[1..] : value;
        activity.SetTag("rpc.system", "grpc");
        if (slash > 1)
        {
            activity.SetTag("rpc.service", value[1..slash]);
            activity.SetTag("rpc.method", value[(slash + 1)..]);
        }

        activity.SetTag("url.path", value);
        activity.SetTag("server.port", context.Connection.LocalPort);
        return true;
    }
}
