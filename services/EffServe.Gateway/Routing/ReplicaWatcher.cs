using System.Net;
using System.Net.Sockets;
using EffServe.Gateway.Forwarding;
using Grpc.Core;
using Grpc.Health.V1;
using Microsoft.Extensions.Options;

namespace EffServe.Gateway.Routing;

/// <summary>
/// Keeps the replica sets true: resolves DNS names to addresses (a Kubernetes headless service),
/// and asks every replica through grpc.health.v1 whether it serves its model, on the gateway's own
/// channels (a connection pool apart from the forwarded calls, so probes never queue behind
/// inference streams in the gateway). A replica leaves rotation after
/// <see cref="GatewayOptions.HealthCheckFailureThreshold"/> failed probes in a row, or at once when
/// it answers that it does not serve; a probe that times out while the replica keeps answering
/// calls finds it busy, not dead. The gateway's own health is read from the rotation when asked
/// (<see cref="ModelRouter.IsServing"/>), not from here.
/// </summary>
internal sealed class ReplicaWatcher : BackgroundService
{
    private readonly ModelRouter _router;
    private readonly BackendClient _backend;
    private readonly GatewayOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<ReplicaWatcher> _logger;
    private readonly Dictionary<Destination, ProbeVerdict> _lastReported = [];

    public ReplicaWatcher(ModelRouter router, BackendClient backend, IOptions<GatewayOptions> options, TimeProvider time, ILogger<ReplicaWatcher> logger)
    {
        _router = router;
        _backend = backend;
        _options = options.Value;
        _time = time;
        _logger = logger;
    }

    /// <summary>How recently a replica must have answered a call for a timed-out probe to find it busy: since the previous probe began.</summary>
    private TimeSpan BusyWindow => _options.HealthCheckInterval + _options.HealthCheckTimeout;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var nextDns = DateTimeOffset.MinValue;
        using var timer = new PeriodicTimer(_options.HealthCheckInterval, _time);
        do
        {
            if (_options.Models.Values.Any(m => m.DnsNames.Count > 0) && _time.GetUtcNow() >= nextDns)
            {
                await ResolveAsync(stoppingToken).ConfigureAwait(false);
                nextDns = _time.GetUtcNow() + _options.DnsRefreshInterval;
            }

            await ProbeAllAsync(stoppingToken).ConfigureAwait(false);
        }
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
    }

    /// <summary>Probes every replica of every model once, in parallel, and records what each probe found.</summary>
    internal async Task ProbeAllAsync(CancellationToken cancellationToken)
    {
        var probes = _router.Models.SelectMany(m => m.Destinations.Select(d => ProbeAsync(m.Model, d, cancellationToken))).ToList();
        await Task.WhenAll(probes).ConfigureAwait(false);
    }

    private async Task ProbeAsync(string model, Destination destination, CancellationToken cancellationToken)
    {
        ProbeResult result;
        string detail;
        try
        {
            var client = new Health.HealthClient(destination.Channel(_backend.ChannelHandler));
            var reply = await client.CheckAsync(new HealthCheckRequest { Service = model }, deadline: _time.GetUtcNow().UtcDateTime + _options.HealthCheckTimeout, cancellationToken: cancellationToken).ConfigureAwait(false);
            result = reply.Status == HealthCheckResponse.Types.ServingStatus.Serving ? ProbeResult.Serving : ProbeResult.NotServing;
            detail = reply.Status.ToString();
        }
        catch (RpcException e) when (!cancellationToken.IsCancellationRequested)
        {
            result = e.StatusCode == StatusCode.DeadlineExceeded ? ProbeResult.TimedOut : ProbeResult.Failed;
            detail = $"{e.StatusCode}: {e.Status.Detail}";
        }

        var verdict = destination.RecordProbe(result, _options.HealthCheckFailureThreshold, BusyWindow);
        lock (_lastReported)
        {
            if (_lastReported.TryGetValue(destination, out var before) && before == verdict)
            {
                return;
            }

            _lastReported[destination] = verdict;
        }

        switch (verdict)
        {
            case ProbeVerdict.Serving:
                GatewayLog.ReplicaHealth(_logger, model, destination.Prefix, "serving", detail);
                break;
            case ProbeVerdict.Busy:
                GatewayLog.ReplicaBusy(_logger, model, destination.Prefix, detail);
                break;
            case ProbeVerdict.Failing:
                GatewayLog.ReplicaProbeFailed(_logger, model, destination.Prefix, destination.ConsecutiveFailedProbes, _options.HealthCheckFailureThreshold, detail);
                break;
            default:
                GatewayLog.ReplicaHealth(_logger, model, destination.Prefix, "out of rotation", detail);
                break;
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
                lock (_lastReported)
                {
                    _lastReported.Remove(gone);
                }

                gone.Dispose();
            }
        }
    }
}
