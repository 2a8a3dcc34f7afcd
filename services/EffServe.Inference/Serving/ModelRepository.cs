using EffServe.Core.Selection;
using EffServe.Core.Statistics;
using EffServe.Core.Zoo;
using EffServe.Onnx;
using Grpc.Health.V1;
using Grpc.HealthCheck;
using Microsoft.Extensions.Options;

namespace EffServe.Inference.Serving;

/// <summary>A model as this process serves it: its sessions and its counters.</summary>
public sealed class ServedModel(ModelRuntime runtime)
{
    public ModelRuntime Runtime { get; } = runtime;

    public ModelDefinition Definition => Runtime.Model;

    public ModelStatistics Statistics { get; } = new();

    /// <summary>Predicted run time per variant and batch size, from the profile and the runs seen here.</summary>
    public IReadOnlyDictionary<string, LatencyModel> Latency { get; } =
        runtime.Model.Variants.ToDictionary(v => v.Name, v => new LatencyModel(v.Profile, v.ExitThreshold), StringComparer.Ordinal);

    /// <summary>How far the model's recent requests took beyond their predictions; selection scales its predictions by it.</summary>
    public PredictionCalibration Calibration { get; } = new();
}

/// <summary>
/// The models this process serves. Filled once at start-up, before the server takes requests;
/// readiness (ServerReady, grpc.health.v1) follows it.
/// </summary>
public sealed class ModelRepository : IDisposable
{
    private readonly IOptions<InferenceServiceOptions> _options;
    private readonly IOptions<OnnxOptions> _onnxOptions;
    private readonly IHostEnvironment _environment;
    private readonly HealthServiceImpl _health;
    private readonly ILogger<ModelRepository> _logger;
    private IReadOnlyDictionary<string, ServedModel> _models = new Dictionary<string, ServedModel>();

    public ModelRepository(IOptions<InferenceServiceOptions> options, IOptions<OnnxOptions> onnxOptions, IHostEnvironment environment, HealthServiceImpl health, ILogger<ModelRepository> logger)
    {
        _options = options;
        _onnxOptions = onnxOptions;
        _environment = environment;
        _health = health;
        _logger = logger;
        _health.SetStatus("", HealthCheckResponse.Types.ServingStatus.NotServing);
    }

    public IReadOnlyCollection<ServedModel> Models => (IReadOnlyCollection<ServedModel>)_models.Values;

    public bool IsLoaded { get; private set; }

    /// <summary>Ready when loaded and every model has a variant that can run.</summary>
    public bool IsReady => IsLoaded && _models.Values.All(m => m.Runtime.IsReady);

    public string ZooPath => Path.GetFullPath(_options.Value.ZooPath, _environment.ContentRootPath);

    public bool TryGet(string name, out ServedModel model) => _models.TryGetValue(name, out model!);

    public IEnumerable<string> Names => _models.Keys.Order(StringComparer.Ordinal);

    /// <summary>Loads and warms every configured model; throws <see cref="ZooValidationException"/> listing every problem.</summary>
    public void Load()
    {
        InferenceLog.LoadingZoo(_logger, ZooPath);
        var loader = new ZooLoader(new OnnxGraphReader());
        IReadOnlyList<ModelDefinition> definitions;
        try
        {
            definitions = loader.LoadZoo(ZooPath, _options.Value.Models);
        }
        catch (ZooValidationException e)
        {
            InferenceLog.ZooInvalid(_logger, e.Message);
            throw;
        }

        var models = new Dictionary<string, ServedModel>(StringComparer.Ordinal);
        try
        {
            foreach (var definition in definitions)
            {
                var runtime = ModelRuntime.Load(definition, _onnxOptions.Value, _logger);
                models.Add(definition.Name, new ServedModel(runtime));
                if (runtime.IsReady)
                {
                    InferenceLog.ModelReady(_logger, definition.Name, definition.Version, definition.Revision,
                        string.Join(", ", runtime.Variants.Where(v => v.Loaded).Select(v => v.Definition.Name)), runtime.DefaultVariant);
                }
                else
                {
                    InferenceLog.ModelNotReady(_logger, definition.Name);
                }

                _health.SetStatus(definition.Name, runtime.IsReady ? HealthCheckResponse.Types.ServingStatus.Serving : HealthCheckResponse.Types.ServingStatus.NotServing);
            }
        }
        catch
        {
            foreach (var model in models.Values)
            {
                model.Runtime.Dispose();
            }

            throw;
        }

        _models = models;
        IsLoaded = true;
        _health.SetStatus("", IsReady ? HealthCheckResponse.Types.ServingStatus.Serving : HealthCheckResponse.Types.ServingStatus.NotServing);
    }

    /// <summary>Marks every model not serving, so that balancers stop sending work while the process drains.</summary>
    public void MarkStopping()
    {
        _health.SetStatus("", HealthCheckResponse.Types.ServingStatus.NotServing);
        foreach (var name in _models.Keys)
        {
            _health.SetStatus(name, HealthCheckResponse.Types.ServingStatus.NotServing);
        }
    }

    public void Dispose()
    {
        foreach (var model in _models.Values)
        {
            model.Runtime.Dispose();
        }
    }
}

/// <summary>Reports every model not serving as soon as the process begins to stop.</summary>
internal sealed class StoppingNotifier(ModelRepository repository, IHostApplicationLifetime lifetime) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        lifetime.ApplicationStopping.Register(repository.MarkStopping);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
