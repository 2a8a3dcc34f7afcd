using System.Diagnostics;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OpenTelemetry.Metrics;

namespace EffServe.ServiceDefaults;

/// <summary>
/// The Prometheus scrape endpoint (<c>GET /metrics</c>) on an HTTP/1.1 port of its own: the host's
/// gRPC port speaks HTTP/2 only (h2c), which Prometheus cannot scrape, and an extra Kestrel endpoint
/// there would silently replace the host's --urls. It is a second, minimal server in the same
/// process, reading the host's meter provider.
/// </summary>
public sealed partial class MetricsListener : IHostedService, IAsyncDisposable
{
    private readonly TelemetryOptions _options;
    private readonly MeterProvider _meterProvider;
    private readonly ILogger<MetricsListener> _logger;
    private WebApplication? _app;

    public MetricsListener(IOptions<TelemetryOptions> options, MeterProvider meterProvider, ILogger<MetricsListener> logger)
    {
        _options = options.Value;
        _meterProvider = meterProvider;
        _logger = logger;
    }

    /// <summary>The address the listener took (with the real port when 0 was asked); null before it starts.</summary>
    public Uri? Address { get; private set; }

    /// <summary>The scrape URL: <see cref="Address"/> + /metrics; null before the listener starts.</summary>
    public Uri? ScrapeUrl => Address is null ? null : new Uri(Address, "/metrics");

    /// <summary>Reads http://HOST:PORT where HOST is an IP address, <c>localhost</c> or <c>*</c> (every interface).</summary>
    public static bool TryParse(string url, out Action<KestrelServerOptions> listen, out string problem)
    {
        listen = _ => { };
        BindingAddress address;
        try
        {
            address = BindingAddress.Parse(url);
        }
        catch (FormatException e)
        {
            problem = e.Message;
            return false;
        }

        if (address.Scheme != "http" || address.IsUnixPipe || address.PathBase.Length > 0)
        {
            problem = "use http://HOST:PORT with no path (the scrape path is /metrics).";
            return false;
        }

        var port = address.Port;
        if (address.Host is "*" or "+")
        {
            listen = k => k.ListenAnyIP(port, o => o.Protocols = HttpProtocols.Http1);
        }
        else if (address.Host == "localhost" && port > 0)
        {
            listen = k => k.ListenLocalhost(port, o => o.Protocols = HttpProtocols.Http1);
        }
        else if (IPAddress.TryParse(address.Host.Trim('[', ']'), out var ip))
        {
            listen = k => k.Listen(ip, port, o => o.Protocols = HttpProtocols.Http1);
        }
        else
        {
            problem = "the host must be an IP address, localhost (with a fixed port) or * for every interface.";
            return false;
        }

        problem = "";
        return true;
    }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (!TryParse(_options.MetricsUrl, out var listen, out var problem))
        {
            throw new InvalidOperationException($"{TelemetryOptions.SectionName}:MetricsUrl is '{_options.MetricsUrl}': {problem}");
        }

        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.WebHost.UseKestrelCore().ConfigureKestrel(listen);
        var app = builder.Build();
        app.Use(static (context, next) =>
        {
            // Scrapes are never traced (this small server has no ServerSpans of its own).
            if (Activity.Current is { Kind: ActivityKind.Server } activity)
            {
                ServerSpans.Untrace(activity);
            }

            return next(context);
        });
        app.UseOpenTelemetryPrometheusScrapingEndpoint(_meterProvider, context => context.Request.Path == "/metrics", null, null, null);
        app.Run(context =>
        {
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            return Task.CompletedTask;
        });
        try
        {
            await app.StartAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (IOException e) when (HostStartup.IsAddressInUse(e))
        {
            await app.DisposeAsync().ConfigureAwait(false);
            throw new PortInUseException(_options.MetricsUrl, $"{TelemetryOptions.SectionName}:MetricsUrl (port 0 takes a free one)", e);
        }

        _app = app;
        Address = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
        Log.Listening(_logger, ScrapeUrl!);
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_app is not null)
        {
            await _app.StopAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.DisposeAsync().ConfigureAwait(false);
            _app = null;
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "Prometheus metrics at {ScrapeUrl}")]
        public static partial void Listening(ILogger logger, Uri scrapeUrl);
    }
}
