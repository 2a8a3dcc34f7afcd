using System.Net;
using EffServe.Gateway;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace EffServe.Testing;

/// <summary>
/// A real gateway: the production wiring (AddGateway, CheckSettings, MapGateway) on real Kestrel,
/// listening on a loopback port over h2c. What it logs is kept in <see cref="Logs"/>. Dispose stops it.
/// </summary>
public sealed class GatewayServer : IAsyncDisposable
{
    private readonly WebApplication _app;

    private GatewayServer(WebApplication app, Uri address, LogCapture logs)
    {
        _app = app;
        Address = address;
        Logs = logs;
        Channel = GrpcChannel.ForAddress(address);
    }

    public Uri Address { get; }

    /// <summary>A channel to the gateway, shared by the test's clients.</summary>
    public GrpcChannel Channel { get; }

    public IServiceProvider Services => _app.Services;

    /// <summary>Everything the gateway logged since it started.</summary>
    public LogCapture Logs { get; }

    /// <summary>
    /// Starts a gateway configured by <paramref name="settings"/> (full keys, such as
    /// <c>EffServe:Gateway:Models:digits:Destinations:0</c>) on <paramref name="port"/> (0: a free one).
    /// Invalid settings throw, with every problem the gateway reported.
    /// </summary>
    public static async Task<GatewayServer> StartAsync(IDictionary<string, string?> settings, int port = 0)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions
        {
            EnvironmentName = "Testing",
            ContentRootPath = RepoPaths.Root,
            Args = [],
        });
        builder.Configuration.AddInMemoryCollection(settings);
        var logs = new LogCapture();
        builder.Logging.ClearProviders();
        builder.Logging.SetMinimumLevel(LogLevel.Information);
        builder.Logging.AddProvider(logs);
        builder.AddGateway();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, port, o => o.Protocols = HttpProtocols.Http2));
        var app = builder.Build();
        if (!app.CheckSettings())
        {
            var problems = string.Join(Environment.NewLine, logs.Entries.Where(e => e.Level >= LogLevel.Error).Select(e => e.Message));
            await app.DisposeAsync();
            throw new InvalidOperationException($"The gateway refused its settings: {problems}");
        }

        app.MapGateway();
        if (port != 0)
        {
            await LoopbackPorts.WaitUntilFreeAsync(port, TimeSpan.FromSeconds(10));
        }

        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new GatewayServer(app, new Uri(address), logs);
    }

    /// <summary>
    /// Waits until the gateway's grpc.health.v1 reports <paramref name="status"/> for
    /// <paramref name="service"/> ("" for the gateway as a whole, or a model name); throws after
    /// <paramref name="timeout"/> with the last answer seen.
    /// </summary>
    public async Task WaitForHealthAsync(string service, HealthCheckResponse.Types.ServingStatus status, TimeSpan timeout)
    {
        var client = new Health.HealthClient(Channel);
        var clock = TimeProvider.System;
        var giveUpAt = clock.GetUtcNow() + timeout;
        var last = "no answer yet";
        while (clock.GetUtcNow() < giveUpAt)
        {
            try
            {
                var reply = await client.CheckAsync(new HealthCheckRequest { Service = service }, deadline: clock.GetUtcNow().UtcDateTime.AddSeconds(2));
                if (reply.Status == status)
                {
                    return;
                }

                last = reply.Status.ToString();
            }
            catch (RpcException e)
            {
                last = $"{e.StatusCode}: {e.Status.Detail}"; // NOT_FOUND until the first probe round ends
            }

            await Task.Delay(TimeSpan.FromMilliseconds(25));
        }

        throw new TimeoutException($"The gateway's health for '{service}' did not become {status} within {timeout}; last: {last}.");
    }

    /// <summary>Waits until the gateway reports <paramref name="service"/> SERVING.</summary>
    public Task WaitUntilServingAsync(string service, TimeSpan? timeout = null) =>
        WaitForHealthAsync(service, HealthCheckResponse.Types.ServingStatus.Serving, timeout ?? TimeSpan.FromSeconds(15));

    public async ValueTask DisposeAsync()
    {
        Channel.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
