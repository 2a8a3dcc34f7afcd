using System.Diagnostics;
using System.Net;
using System.Security.Authentication;
using EffServe.ServiceDefaults;
using Microsoft.Extensions.Options;
using Yarp.ReverseProxy.Forwarder;

namespace EffServe.Gateway.Forwarding;

/// <summary>
/// The one HTTP/2 client the gateway talks to replicas with: pooled connections, no proxy, no
/// cookies, no decompression, no redirects. When the gateway makes spans, each call to a replica
/// carries the W3C trace context of the gateway's own span (the caller's traceparent, which YARP
/// copies along with the other headers, is replaced), so the replica's spans hang under the
/// gateway's. When it makes none (telemetry off, or no collector), the handler adds nothing and the
/// caller's headers pass through untouched: an unrecorded gateway activity must not stand in for
/// the caller's trace and unmark it as sampled.
/// </summary>
public sealed class BackendClient : IDisposable
{
    public BackendClient(IOptions<GatewayOptions> options, TelemetryWiring? telemetry = null)
    {
        var traced = telemetry?.Traces ?? false;
        Handler = new SocketsHttpHandler
        {
            UseProxy = false,
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            UseCookies = false,
            EnableMultipleHttp2Connections = true,
            ActivityHeadersPropagator = traced ? new ReverseProxyPropagator(DistributedContextPropagator.Current) : null,
            ConnectTimeout = TimeSpan.FromSeconds(5),
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5),
            KeepAlivePingDelay = TimeSpan.FromSeconds(30),
            KeepAlivePingTimeout = TimeSpan.FromSeconds(10),
        };
        if (options.Value.BackendTlsSkipValidation)
        {
#pragma warning disable CA5359 // opt-in, for development certificates only; documented as such
            Handler.SslOptions.RemoteCertificateValidationCallback = (_, _, _, _) => true;
#pragma warning restore CA5359
            Handler.SslOptions.EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13;
        }

        Invoker = new HttpMessageInvoker(Handler, disposeHandler: false);

        // The gateway's own gRPC channels (probes, aggregation) get a handler of their own:
        // grpc-dotnet takes over a handler's connect callback, which the forwarder's must keep.
        ChannelHandler = new SocketsHttpHandler
        {
            UseProxy = false,
            EnableMultipleHttp2Connections = true,
            ConnectTimeout = TimeSpan.FromSeconds(5),
            SslOptions = Handler.SslOptions,
        };
    }

    /// <summary>The handler for the gateway's own gRPC channels to replicas.</summary>
    public SocketsHttpHandler ChannelHandler { get; }

    public SocketsHttpHandler Handler { get; }

    public HttpMessageInvoker Invoker { get; }

    public void Dispose()
    {
        Invoker.Dispose();
        Handler.Dispose();
        ChannelHandler.Dispose();
    }
}
