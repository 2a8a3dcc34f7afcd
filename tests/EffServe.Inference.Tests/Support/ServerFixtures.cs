using EffServe.Contracts.Inference;
using EffServe.Contracts.Zoo;
using EffServe.Testing;

namespace EffServe.Inference.Tests.Support;

/// <summary>
/// One real inference service (production wiring, real Kestrel, h2c on a free loopback port),
/// started once before the first test of a class and stopped after its last.
/// </summary>
public abstract class ServerFixture : IAsyncLifetime
{
    private InferenceServer? _server;

    public InferenceServer Server => _server ?? throw new InvalidOperationException("The server has not started.");

    public GRPCInferenceService.GRPCInferenceServiceClient Inference => new(Server.Channel);

    public ZooService.ZooServiceClient Zoo => new(Server.Channel);

    /// <summary>Configuration keys that override the defaults of <see cref="InferenceServer"/>.</summary>
    protected virtual IDictionary<string, string?>? Settings => null;

    /// <summary>Where the server's log goes; null: nowhere.</summary>
    protected virtual LogCapture? Logs => null;

    /// <summary>The zoo folder to serve; called once, before the server starts.</summary>
    protected abstract string PrepareZoo();

    public async ValueTask InitializeAsync()
    {
        _server = await InferenceServer.StartAsync(PrepareZoo(), Settings, logs: Logs);
    }

    public virtual async ValueTask DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }

        GC.SuppressFinalize(this);
    }
}

/// <summary>The demo zoo: model <c>digits</c> with variants fp32 and early-exit.</summary>
public sealed class DigitsServerFixture : ServerFixture
{
    protected override string PrepareZoo() => RepoPaths.Zoo;
}

/// <summary>The demo zoo (<c>digits</c>) with what the server logs kept, the service's own debug lines included.</summary>
public sealed class LoggedDigitsServerFixture : ServerFixture
{
    public LogCapture Captured { get; } = new();

    protected override LogCapture? Logs => Captured;

    protected override IDictionary<string, string?>? Settings => new Dictionary<string, string?> { ["Logging:LogLevel:EffServe"] = "Debug" };

    protected override string PrepareZoo() => RepoPaths.Zoo;
}

/// <summary>The fixture zoo: <c>typed</c>, <c>typed-bf16</c> and <c>add</c> (whose gpu variant is skipped here).</summary>
public sealed class FixtureZooServerFixture : ServerFixture
{
    protected override string PrepareZoo() => RepoPaths.FixtureZoo;
}

/// <summary>
/// A zoo generated for the test run: model <c>typed-fields</c>, one Identity per datatype that has a
/// typed contents field (every datatype but FP16 and BF16). The checked-in <c>typed</c> fixture also
/// requires an FP16 input, and FP16 travels only raw, so a typed request can never reach it.
/// </summary>
public sealed class TypedFieldsServerFixture : ServerFixture
{
    public const string ModelName = "typed-fields";

    private readonly string _root = Path.Combine(Path.GetTempPath(), "effserve-inference-tests-" + Guid.NewGuid().ToString("N"));

    protected override string PrepareZoo()
    {
        var folder = Path.Combine(_root, ModelName);
        Directory.CreateDirectory(folder);
        var cases = DatatypeSamples.WithTypedField;
        File.WriteAllBytes(Path.Combine(folder, "identity.onnx"), IdentityOnnx.Build("typed_fields", cases.Select(c => (c.Suffix, c.OnnxElementType)).ToList(), width: 3));
        File.WriteAllText(Path.Combine(folder, "model.yaml"), IdentityOnnx.Manifest(ModelName, cases.Select(c => (c.Suffix, c.Datatype)).ToList(), width: 3, file: "identity.onnx"));
        return _root;
    }

    public override async ValueTask DisposeAsync()
    {
        await base.DisposeAsync();
        if (Directory.Exists(_root))
        {
            Directory.Delete(_root, recursive: true);
        }
    }
}
