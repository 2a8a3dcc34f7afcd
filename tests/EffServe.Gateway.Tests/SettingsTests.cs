using EffServe.Gateway.Tests.Support;
using EffServe.Testing;

namespace EffServe.Gateway.Tests;

/// <summary>Bad settings stop the gateway before it listens, with every problem named by its path.</summary>
public sealed class SettingsTests
{
    [Fact]
    public async Task CheckSettings_NoModels_RefusedNamingModels()
    {
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => GatewayServer.StartAsync(new GatewaySettings().ToDictionary()));

        Assert.Contains("EffServe:Gateway:Models is empty", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CheckSettings_SeveralProblems_EveryOneReported()
    {
        var settings = new GatewaySettings()
            .Set("Models:digits:Destinations:0", "127.0.0.1:8001")
            .Set("LoadBalancing", "Random")
            .Set("MaxRequestBytes", "10")
            .Set("Door:Jwt:SigningKey", "short")
            .Set("Door:ApiKeys:key-without-a-tenant-0123", " ");

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => GatewayServer.StartAsync(settings.ToDictionary()));

        Rpc.AssertMentions(error.Message, "Models:digits:Destinations:0", "LoadBalancing", "MaxRequestBytes", "Door:Jwt:SigningKey", "Door:ApiKeys maps a key to no tenant");
        Assert.DoesNotContain("key-without-a-tenant", error.Message, StringComparison.Ordinal); // keys are secrets
    }
}
