using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace EffServe.Cli.Tests.Infrastructure;

/// <summary>
/// A real Kestrel gRPC server (h2c) on a free loopback port, serving whichever canned services a
/// test maps. Services not mapped answer UNIMPLEMENTED, as on a real server that lacks them.
/// </summary>
public sealed class FakeOipServer : IAsyncDisposable
{
    private readonly WebApplication _app;

    private FakeOipServer(WebApplication app, string address)
    {
        _app = app;
        Address = address;
    }

    /// <summary>http://127.0.0.1:PORT</summary>
    public string Address { get; }

    /// <param name="inference">The OIP service to serve, or null for none.</param>
    /// <param name="zoo">EffServe's zoo service to serve, or null for none.</param>
    /// <param name="protocols">What the endpoint speaks; plaintext gRPC needs Http2 alone (h2c).</param>
    public static async Task<FakeOipServer> StartAsync(FakeInferenceService? inference, FakeZooService? zoo = null, HttpProtocols protocols = HttpProtocols.Http2)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(kestrel =>
            kestrel.Listen(IPAddress.Loopback, 0, listen => listen.Protocols = protocols));
        builder.Services.AddGrpc();
        if (inference is not null)
        {
            builder.Services.AddSingleton(inference);
        }

        if (zoo is not null)
        {
            builder.Services.AddSingleton(zoo);
        }

        var app = builder.Build();
        if (inference is not null)
        {
            app.MapGrpcService<FakeInferenceService>();
        }

        if (zoo is not null)
        {
            app.MapGrpcService<FakeZooService>();
        }

        await app.StartAsync(TestContext.Current.CancellationToken);
        var address = app.Urls.Single().Replace("[::1]", "127.0.0.1", StringComparison.Ordinal);
        return new FakeOipServer(app, address);
    }

    /// <summary>A loopback address where nothing listens (a port just bound and released).</summary>
    public static string UnusedAddress()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        var port = ((IPEndPoint)socket.LocalEndPoint!).Port;
        return $"127.0.0.1:{port}";
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
