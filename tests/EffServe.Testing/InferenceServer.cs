using System.Net;
using EffServe.Inference;
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
/// A real inference service: the production wiring on real Kestrel, listening on a free loopback
/// port over h2c. Dispose stops it.
/// </summary>
public sealed class InferenceServer : IAsyncDisposable
{
    private readonly WebApplication _app;

    private InferenceServer(WebApplication app, Uri address)
    {
        _app = app;
        Address = address;
        Channel = GrpcChannel.ForAddress(address);
    }

    public Uri Address { get; }

    /// <summary>A channel to the server, shared by the test's clients.</summary>
    public GrpcChannel Channel { get; }

    public IServiceProvider Services => _app.Services;

    /// <summary>
    /// Starts a service over <paramref name="zooPath"/>; <paramref name="settings"/> override configuration keys.
    /// <paramref name="port"/> 0 takes a free port; another value listens there again, so that a
    /// stopped server can come back on the address its clients know. <paramref name="logs"/>, when
    /// given, receives what the server logs; <paramref name="services"/> may replace registrations
    /// (a clock) after the production wiring.
    /// </summary>
    public static async Task<InferenceServer> StartAsync(string zooPath, IDictionary<string, string?>? settings = null, int port = 0, LogCapture? logs = null, Action<IServiceCollection>? services = null)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions
        {
            EnvironmentName = "Testing",
            ContentRootPath = RepoPaths.Root,
            Args = [],
        });
        var config = new Dictionary<string, string?>
        {
            ["EffServe:Inference:ZooPath"] = zooPath,
            ["EffServe:Onnx:WarmupRuns"] = "1",
            // Selection from the latency model alone, so that which variant a budget gets does not
            // depend on how busy the test machine is (calibration is tested on its own).
            ["EffServe:Selection:Calibrate"] = "false",
        };
        // The demo zoo serves digits only unless a test asks for more: tests speak of digits, and
        // warming every demo model for each test server would only cost start-up time.
        if (Path.GetFullPath(zooPath) == Path.GetFullPath(RepoPaths.Zoo) && settings?.Keys.Any(k => k.StartsWith("EffServe:Inference:Models", StringComparison.Ordinal)) != true)
        {
            config["EffServe:Inference:Models:0"] = "digits";
        }

        foreach (var (key, value) in settings ?? new Dictionary<string, string?>())
        {
            config[key] = value;
        }

        builder.Configuration.AddInMemoryCollection(config);
        builder.Logging.ClearProviders();
        var ownLogs = logs is null ? new LogCapture() : null;
        builder.Logging.AddProvider(logs ?? ownLogs!);
        if (ownLogs is not null)
        {
            // Kept only to say why the settings were refused.
            builder.Logging.AddFilter<LogCapture>((_, level) => level >= LogLevel.Critical);
        }

        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, port, o => o.Protocols = HttpProtocols.Http2));
        builder.AddInferenceService();
        services?.Invoke(builder.Services);
        var app = builder.Build();
        if (!app.CheckSettings())
        {
            var problems = string.Join(Environment.NewLine, (logs ?? ownLogs!).Entries.Where(e => e.Level >= LogLevel.Critical).Select(e => e.Message));
            await app.DisposeAsync();
            throw new InvalidOperationException($"The service refused its settings: {problems}");
        }

        app.MapInferenceService();
        if (!app.LoadZoo())
        {
            await app.DisposeAsync();
            throw new InvalidOperationException($"The zoo at {zooPath} did not load.");
        }

        if (port != 0)
        {
            await LoopbackPorts.WaitUntilFreeAsync(port, TimeSpan.FromSeconds(10));
        }

        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new InferenceServer(app, new Uri(address));
    }

    public async ValueTask DisposeAsync()
    {
        Channel.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
