using Microsoft.Extensions.Options;

namespace EffServe.Gateway;

/// <summary>Configuration section EffServe:Gateway.</summary>
public sealed class GatewayOptions
{
    public const string SectionName = "EffServe:Gateway";

    /// <summary>Model name → where its replicas are.</summary>
    public Dictionary<string, ModelRouteOptions> Models { get; set; } = new(StringComparer.Ordinal);

    /// <summary>PowerOfTwoChoices (default) or LeastRequests.</summary>
    public string LoadBalancing { get; set; } = "PowerOfTwoChoices";

    /// <summary>How often each replica's grpc.health.v1 status is checked.</summary>
    public TimeSpan HealthCheckInterval { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>How long a probe waits for its answer; a probe that times out while the replica answers calls finds it busy, not failed.</summary>
    public TimeSpan HealthCheckTimeout { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>How many failed probes in a row take a replica out of rotation; one SERVING answer brings it back.</summary>
    public int HealthCheckFailureThreshold { get; set; } = 3;

    /// <summary>How long a replica that failed at the transport level stays out of rotation (unless a probe brings it back).</summary>
    public TimeSpan PassiveHealthPenalty { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How often DNS names of replicas are resolved again.</summary>
    public TimeSpan DnsRefreshInterval { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>Largest request message accepted, in bytes, compressed or inflated.</summary>
    public int MaxRequestBytes { get; set; } = 64 * 1024 * 1024;

    /// <summary>Request bytes the gateway may hold at once over all connections while it reads and routes calls.</summary>
    public long MaxBufferedRequestBytes { get; set; } = 128L * 1024 * 1024;

    /// <summary>Request bytes one connection may have held in the gateway at once (at least MaxRequestBytes + 5).</summary>
    public long MaxBufferedRequestBytesPerConnection { get; set; } = 64L * 1024 * 1024 + 5;

    /// <summary>Calls one replica may have in flight through this gateway; more are refused at once (RESOURCE_EXHAUSTED).</summary>
    public int MaxCallsPerReplica { get; set; } = 256;

    /// <summary>How long a call's first message may take to arrive in full.</summary>
    public TimeSpan RequestBodyTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Whether backends are called over TLS (https) rather than h2c.</summary>
    public bool BackendTls { get; set; }

    /// <summary>Accept backends' certificates without validation (development only).</summary>
    public bool BackendTlsSkipValidation { get; set; }

    public DoorOptions Door { get; set; } = new();
}

/// <summary>The replicas of one model.</summary>
public sealed class ModelRouteOptions
{
    /// <summary>Addresses such as http://10.0.0.7:8001.</summary>
    public List<string> Destinations { get; set; } = [];

    /// <summary>DNS names with port (host:port), resolved to every address they hold (a Kubernetes headless service).</summary>
    public List<string> DnsNames { get; set; } = [];

    /// <summary>Tenants allowed to call this model; empty allows every tenant.</summary>
    public List<string> AllowedTenants { get; set; } = [];
}

/// <summary>Who may come in, and how often. Everything is off unless configured.</summary>
public sealed class DoorOptions
{
    /// <summary>API key → tenant. Clients send the key in the `effserve-api-key` header.</summary>
    public Dictionary<string, string> ApiKeys { get; set; } = new(StringComparer.Ordinal);

    public JwtOptions? Jwt { get; set; }

    /// <summary>Requests per second each tenant may make (token bucket); 0 turns rate limiting off.</summary>
    public double RequestsPerSecond { get; set; }

    /// <summary>Bucket size: how many requests a tenant may burst.</summary>
    public int Burst { get; set; } = 10;

    public bool RequiresIdentity => ApiKeys.Count > 0 || Jwt is not null;
}

public sealed class JwtOptions
{
    public string Issuer { get; set; } = "";
    public string Audience { get; set; } = "";

    /// <summary>Symmetric signing key (HS256), at least 32 bytes.</summary>
    public string SigningKey { get; set; } = "";

    /// <summary>Claim holding the tenant.</summary>
    public string TenantClaim { get; set; } = "tenant";
}

internal sealed class GatewayOptionsValidator : IValidateOptions<GatewayOptions>
{
    public ValidateOptionsResult Validate(string? name, GatewayOptions options)
    {
        const string P = GatewayOptions.SectionName;
        var failures = new List<string>();
        if (options.Models.Count == 0)
        {
            failures.Add($"{P}:Models is empty; configure at least one model with its destinations.");
        }

        foreach (var (model, route) in options.Models)
        {
            if (route.Destinations.Count == 0 && route.DnsNames.Count == 0)
            {
                failures.Add($"{P}:Models:{model} has no Destinations and no DnsNames.");
            }

            for (var i = 0; i < route.Destinations.Count; i++)
            {
                if (!Uri.TryCreate(route.Destinations[i], UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
                {
                    failures.Add($"{P}:Models:{model}:Destinations:{i} is '{route.Destinations[i]}'; use http://host:port or https://host:port.");
                }
            }

            for (var i = 0; i < route.DnsNames.Count; i++)
            {
                var parts = route.DnsNames[i].Split(':');
                if (parts.Length != 2 || parts[0].Length == 0 || !int.TryParse(parts[1], out var port) || port is <= 0 or > 65535)
                {
                    failures.Add($"{P}:Models:{model}:DnsNames:{i} is '{route.DnsNames[i]}'; use host:port.");
                }
            }
        }

        if (options.LoadBalancing is not ("PowerOfTwoChoices" or "LeastRequests"))
        {
            failures.Add($"{P}:LoadBalancing is '{options.LoadBalancing}'; use PowerOfTwoChoices or LeastRequests.");
        }

        if (options.HealthCheckInterval <= TimeSpan.Zero || options.HealthCheckTimeout <= TimeSpan.Zero)
        {
            failures.Add($"{P}:HealthCheckInterval and HealthCheckTimeout must be positive.");
        }

        if (options.HealthCheckFailureThreshold < 1)
        {
            failures.Add($"{P}:HealthCheckFailureThreshold is {options.HealthCheckFailureThreshold}; it must be at least 1.");
        }

        if (options.PassiveHealthPenalty <= TimeSpan.Zero)
        {
            failures.Add($"{P}:PassiveHealthPenalty must be positive.");
        }

        if (options.MaxRequestBytes < 1024)
        {
            failures.Add($"{P}:MaxRequestBytes is {options.MaxRequestBytes}; it must be at least 1024.");
        }

        if (options.MaxBufferedRequestBytesPerConnection < (long)options.MaxRequestBytes + 5)
        {
            failures.Add($"{P}:MaxBufferedRequestBytesPerConnection is {options.MaxBufferedRequestBytesPerConnection}; it must be at least MaxRequestBytes + 5 ({(long)options.MaxRequestBytes + 5}) so that one largest message fits.");
        }

        if (options.MaxBufferedRequestBytes < options.MaxBufferedRequestBytesPerConnection)
        {
            failures.Add($"{P}:MaxBufferedRequestBytes is {options.MaxBufferedRequestBytes}; it must be at least MaxBufferedRequestBytesPerConnection ({options.MaxBufferedRequestBytesPerConnection}).");
        }

        if (options.MaxCallsPerReplica < 1)
        {
            failures.Add($"{P}:MaxCallsPerReplica is {options.MaxCallsPerReplica}; it must be at least 1.");
        }

        if (options.RequestBodyTimeout <= TimeSpan.Zero)
        {
            failures.Add($"{P}:RequestBodyTimeout must be positive.");
        }

        if (options.Door.RequestsPerSecond < 0 || options.Door.Burst < 1)
        {
            failures.Add($"{P}:Door:RequestsPerSecond must be ≥ 0 and Door:Burst ≥ 1.");
        }

        foreach (var tenant in options.Door.ApiKeys.Values)
        {
            if (string.IsNullOrWhiteSpace(tenant))
            {
                failures.Add($"{P}:Door:ApiKeys maps a key to no tenant; give every key a tenant name.");
            }
        }

        if (options.Door.Jwt is { } jwt && System.Text.Encoding.UTF8.GetByteCount(jwt.SigningKey) < 32)
        {
            failures.Add($"{P}:Door:Jwt:SigningKey must be at least 32 bytes.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
