using System.Net;
using System.Net.Sockets;
using EffServe.Gateway.Tests.Support;
using EffServe.ServiceDefaults;
using EffServe.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;

namespace EffServe.Gateway.Tests;

/// <summary>
/// A port something else holds is an operator's mistake, not a crash: the gateway says in one line
/// which address, which part, and how to choose another, and exits with its own status, with no
/// stack trace anywhere in its log.
/// </summary>
public sealed class PortInUseTests
{
    [Fact]
    public async Task ServeAsync_PortHeldByAnotherProcess_OneLineNamingPortAndHowToMove_ExitStatus3()
    {
        using var holder = new TcpListener(IPAddress.Loopback, 0);
        holder.Start();
        var port = ((IPEndPoint)holder.LocalEndpoint).Port;
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Testing", ContentRootPath = RepoPaths.Root, Args = [] });
        var settings = new GatewaySettings().Model(Digits.Model, new Uri("http://127.0.0.1:1")).ToDictionary();
        settings["Urls"] = $"http://127.0.0.1:{port}";
        builder.Configuration.AddInMemoryCollection(settings);
        var logs = new LogCapture();
        builder.Logging.ClearProviders();
        builder.Logging.AddProvider(logs);
        builder.AddGateway();
        await using var app = builder.Build();
        Assert.True(app.CheckSettings());
        app.MapGateway();

        var status = await app.ServeAsync("the gateway", "choose another with `make run PORT=N`");

        Assert.Equal(HostStartup.PortInUseExitCode, status);
        var errors = logs.Entries.Where(e => e.Level >= LogLevel.Error).ToList();
        var line = Assert.Single(errors);
        Rpc.AssertMentions(line.Message, port.ToString(System.Globalization.CultureInfo.InvariantCulture), "the gateway", "make run PORT=N");
        Assert.DoesNotContain(logs.Entries, e => e.Exception is not null);
    }
}
