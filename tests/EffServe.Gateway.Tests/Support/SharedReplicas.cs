using EffServe.Testing;

namespace EffServe.Gateway.Tests.Support;

/// <summary>
/// Two real inference replicas serving the demo zoo (model <c>digits</c>), and the main gateway in
/// front of them (MaxRequestBytes 4096, so a 20-image request is too large). Shared by the tests
/// of <see cref="OnSharedReplicas"/>, which run one after another so that each replica's
/// statistics only move with the test that is running.
/// </summary>
public sealed class SharedReplicas : IAsyncLifetime
{
    public const int MaxRequestBytes = 4096;

    private InferenceServer? _first;
    private InferenceServer? _second;
    private GatewayServer? _gateway;

    public InferenceServer First => _first ?? throw new InvalidOperationException("Not started.");

    public InferenceServer Second => _second ?? throw new InvalidOperationException("Not started.");

    public GatewayServer Gateway => _gateway ?? throw new InvalidOperationException("Not started.");

    public async ValueTask InitializeAsync()
    {
        var replicas = await Task.WhenAll(InferenceServer.StartAsync(RepoPaths.Zoo), InferenceServer.StartAsync(RepoPaths.Zoo));
        (_first, _second) = (replicas[0], replicas[1]);
        var settings = new GatewaySettings()
            .Model(Digits.Model, First.Address, Second.Address)
            .Set("MaxRequestBytes", MaxRequestBytes.ToString(System.Globalization.CultureInfo.InvariantCulture));
        _gateway = await GatewayServer.StartAsync(settings.ToDictionary());
        await Gateway.WaitUntilServingAsync(Digits.Model);
        await Gateway.WaitUntilServingAsync("");
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var server in new IAsyncDisposable?[] { _gateway, _first, _second })
        {
            if (server is not null)
            {
                await server.DisposeAsync();
            }
        }
    }
}

[CollectionDefinition(nameof(OnSharedReplicas))]
public sealed class OnSharedReplicas : ICollectionFixture<SharedReplicas>;
