using System.Net;
using System.Net.Sockets;
using EffServe.Gateway.Forwarding;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.HealthCheck;
using Microsoft.Extensions.Options;

namespace EffServe.Gateway.Routing;

/// <summary>
/// Keeps the replica sets true: resolves DNS names to addresses (a Kubernetes headless service),
/// and asks every replica through grpc.health.v1 whether it serves its model. The gateway's own
/// health service follows: a model serves while it has a healthy replica, the gateway while every
/// model does.
/// </summary>
internal sealed class ReplicaWatcher : BackgroundService
{
    private readonly ModelRouter _router;
    private readonly BackendClient _backend;
    private readonly HealthServiceImpl _health;
    private readonly GatewayOptions _options;
    private readonly ILogger<ReplicaWatcher> _logger;
    private readonly Dictionary<Destination, bool> _lastReported = [];

    public ReplicaWatcher(ModelRouter router, BackendClient backend, HealthServiceImpl health, IOptions<GatewayOptions> options, ILogger<ReplicaWatcher> logger)
    {
        _router = router;
        _backend = backend;
        _health = health;
        _options = options.Value;
        _logger = logger;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var nextDns = DateTimeOffset.MinValue;
        using var timer = new PeriodicTimer(_options.HealthCheckInterval);
        do
        {
            if (_options.Models.Values.Any(m => m.DnsNames.Count > 0) && TimeProvider.System.GetUtcNow() >= nextDns)
            {
                await ResolveAsync(stoppingToken).ConfigureAwait(false);
                nextDns = TimeProvider.System.GetUtcNow() + _options.DnsRefreshInterval;
            }

            await ProbeAllAsync(stoppingToken).ConfigureAwait(false);
        }
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
    }

    /// <summary>Probes every replica of every model once, in parallel, and updates health.</summary>
    internal async Task ProbeAllAsync(CancellationToken cancellationToken)
    {
        var probes = _router.Models.SelectMany(m => m.Destinations.Select(d => ProbeAsync(m.Model, d, cancellationToken))).ToList();
        await Task.WhenAll(probes).ConfigureAwait(false);
        var allReady = true;
        foreach (var model in _router.Models)
        {
            var ready = model.HasHealthy;
            allReady &= ready;
            _health.SetStatus(model.Model, ready ? HealthCheckResponse.Types.ServingStatus.Serving : HealthCheckResponse.Types.ServingStatus.NotServing);
        }

        _health.SetStatus("", allReady ? HealthCheckResponse.Types.ServingStatus.Serving : HealthCheckResponse.Types.ServingStatus.NotServing);
    }

    private async Task ProbeAsync(string model, Destination destination, CancellationToken cancellationToken)
    {
        bool serving;
        string detail;
        try
        {
            var client = new Health.HealthClient(destination.Channel(_backend.ChannelHandler));
            var reply = await client.CheckAsync(new HealthCheckRequest { Service = model }, deadline: TimeProvider.System.GetUtcNow().UtcDateTime + _options.HealthCheckTimeout, cancellationToken: cancellationToken).ConfigureAwait(false);
            serving = reply.Status == HealthCheckResponse.Types.ServingStatus.Serving;
            detail = reply.Status.ToString();
        }
        catch (RpcException e) when (!cancellationToken.IsCancellationRequested)
        {
            serving = false;
            detail = $"{e.StatusCode}: {e.Status.Detail}";
        }

        if (serving)
        {
            destination.MarkServing();
        }
        else
        {
            destination.ActiveHealthy = false;
        }

        lock (_lastReported)
        {
            if (!_lastReported.TryGetValue(destination, out var before) || before != serving)
            {
                _lastReported[destination] = serving;
                GatewayLog.ReplicaHealth(_logger, model, destination.Prefix, serving ? "serving" : "not serving", detail);
            }
        }
    }

    private async Task ResolveAsync(CancellationToken cancellationToken)
    {
        foreach (var (model, route) in _options.Models)
        {
            if (route.DnsNames.Count == 0 || !_router.TryGet(model, out var replicas))
            {
                continue;
            }

            var addresses = route.Destinations.Select(d => new Uri(d)).ToList();
            foreach (var name in route.DnsNames)
            {
                var (host, port) = (name[..name.LastIndexOf(':')], int.Parse(name[(name.LastIndexOf(':') + 1)..], System.Globalization.CultureInfo.InvariantCulture));
                try
                {
                    var ips = await Dns.GetHostAddressesAsync(host, cancellationToken).ConfigureAwait(false);
                    var scheme = _options.BackendTls ? "https" : "http";
                    addresses.AddRange(ips.Select(ip => new Uri($"{scheme}://{(ip.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{ip}]" : ip.ToString())}:{port}")));
                }
                catch (SocketException e)
                {
                    GatewayLog.DnsFailed(_logger, model, host, e.Message);
                    addresses.AddRange(replicas.Destinations.Select(d => d.Address)); // keep what we had
                }
            }

            foreach (var gone in replicas.Update(addresses))
            {
                GatewayLog.ReplicaRemoved(_logger, model, gone.Prefix);
                gone.Dispose();
            }
        }
    }
}
