namespace EffServe.Gateway.Tests.Support;

/// <summary>
/// Configuration for a gateway under test, as the flat keys of section EffServe:Gateway. Health is
/// probed every 200 ms and a failed replica sits out 2 s, so that tests see changes quickly.
/// </summary>
internal sealed class GatewaySettings
{
    private const string Section = "EffServe:Gateway:";
    private readonly Dictionary<string, string?> _values = new(StringComparer.Ordinal)
    {
        [Section + "HealthCheckInterval"] = "00:00:00.200",
        [Section + "HealthCheckTimeout"] = "00:00:01",
        [Section + "PassiveHealthPenalty"] = "00:00:02",
    };

    /// <summary>Routes <paramref name="model"/> to <paramref name="destinations"/>.</summary>
    public GatewaySettings Model(string model, params Uri[] destinations)
    {
        for (var i = 0; i < destinations.Length; i++)
        {
            _values[$"{Section}Models:{model}:Destinations:{i}"] = destinations[i].GetLeftPart(UriPartial.Authority);
        }

        return this;
    }

    /// <summary>Lets only <paramref name="tenants"/> call <paramref name="model"/>.</summary>
    public GatewaySettings AllowedTenants(string model, params string[] tenants)
    {
        for (var i = 0; i < tenants.Length; i++)
        {
            _values[$"{Section}Models:{model}:AllowedTenants:{i}"] = tenants[i];
        }

        return this;
    }

    /// <summary>Sets any key under EffServe:Gateway, such as <c>MaxRequestBytes</c> or <c>Door:Burst</c>.</summary>
    public GatewaySettings Set(string key, string value)
    {
        _values[Section + key] = value;
        return this;
    }

    public IDictionary<string, string?> ToDictionary() => new Dictionary<string, string?>(_values, StringComparer.Ordinal);
}
