using System.Diagnostics;
using System.Globalization;
using OpenTelemetry;

namespace EffServe.ServiceDefaults;

/// <summary>
/// Shapes the platform's client spans of gRPC calls as OpenTelemetry's RPC conventions name them,
/// as each ends and before any exporter sees it: grpc-dotnet's <c>Grpc.Net.Client.GrpcOut</c> (the
/// gateway's own calls: probes, aggregation) and System.Net.Http's <c>POST</c> (the forwarder's call
/// to a replica) become <c>package.Service/Method</c> with <c>rpc.system</c>, <c>rpc.service</c> and
/// <c>rpc.method</c>. A grpc-dotnet span covers the whole call and also gets
/// <c>rpc.grpc.status_code</c>, and the Error status for any code but OK. System.Net.Http ends its
/// span when the response headers arrive, before a streamed answer's status: that status is on the
/// gateway's server span for the call (and on the replica's).
/// </summary>
internal sealed class ClientSpans : BaseProcessor<Activity>
{
    public override void OnEnd(Activity data)
    {
        if (data.Kind != ActivityKind.Client || !data.IsAllDataRequested)
        {
            return;
        }

        switch (data.Source.Name)
        {
            case "Grpc.Net.Client":
                if (data.GetTagItem("grpc.method") is string method && Name(data, method)
                    && data.GetTagItem("grpc.status_code") is string status
                    && int.TryParse(status, NumberStyles.None, CultureInfo.InvariantCulture, out var code))
                {
                    data.SetTag("rpc.grpc.status_code", code);
                    if (code != 0)
                    {
                        data.SetStatus(ActivityStatusCode.Error, GrpcCallStatus.Name(code));
                    }
                }

                break;
            case "System.Net.Http":
                if (data.GetTagItem("url.full") is string url && Uri.TryCreate(url, UriKind.Absolute, out var uri))
                {
                    Name(data, uri.AbsolutePath);
                }

                break;
        }
    }

    /// <summary>Names a span after the gRPC method at <paramref name="path"/> (<c>/package.Service/Method</c>); false when it is no such path.</summary>
    private static bool Name(Activity span, string path)
    {
        var slash = path.IndexOf('/', 1);
        if (path.Length < 4 || path[0] != '/' || slash < 2 || slash == path.Length - 1 || path.IndexOf('/', slash + 1) >= 0 || path.IndexOf('.', 1, slash - 1) < 0)
        {
            return false;
        }

        span.DisplayName = path[1..];
        span.SetTag("rpc.system", "grpc");
        span.SetTag("rpc.service", path[1..slash]);
        span.SetTag("rpc.method", path[(slash + 1)..]);
        return true;
    }
}
