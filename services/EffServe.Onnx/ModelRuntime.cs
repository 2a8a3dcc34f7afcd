using System.Diagnostics;
using EffServe.Core.Accounting;
using EffServe.Core.Tensors;
using EffServe.Core.Zoo;
using Microsoft.Extensions.Logging;
using Microsoft.ML.OnnxRuntime;

namespace EffServe.Onnx;

/// <summary>A variant as this process holds it: loaded and warm, or skipped with the reason.</summary>
public sealed record VariantState(VariantDefinition Definition, bool Loaded, string? SkipReason);

/// <summary>
/// A model's ONNX Runtime sessions: one per variant (one per stage for early exit), created
/// and warmed at start-up. Runs are thread-safe.
/// </summary>
public sealed class ModelRuntime : IDisposable
{
    private readonly Dictionary<string, IVariantRunner> _runners;
    private readonly CpuClockScope _cpuClock;

    private ModelRuntime(ModelDefinition model, Dictionary<string, IVariantRunner> runners, IReadOnlyList<VariantState> variants, CpuClockScope cpuClock)
    {
        Model = model;
        _runners = runners;
        _cpuClock = cpuClock;
        Variants = variants;
        var loaded = variants.Where(v => v.Loaded).Select(v => v.Definition.Name).ToList();
        DefaultVariant = loaded.Contains(model.DefaultVariant) ? model.DefaultVariant : loaded.FirstOrDefault();
    }

    public ModelDefinition Model { get; }

    public IReadOnlyList<VariantState> Variants { get; }

    /// <summary>The variant a request that pins none gets: the manifest's default when it loaded, else the first loaded one.</summary>
    public string? DefaultVariant { get; }

    public bool IsReady => DefaultVariant is not null;

    public bool IsLoaded(string variant) => _runners.ContainsKey(variant);

    /// <summary>Whose CPU time <see cref="RunResult.CpuNanoseconds"/> counts: the run's thread where ONNX Runtime computes on it alone.</summary>
    public CpuClockScope CpuTimeScope => _cpuClock;

    /// <summary>Creates and warms every variant of the model; variants whose provider is missing are skipped.</summary>
    public static ModelRuntime Load(ModelDefinition model, OnnxOptions options, ILogger logger)
    {
        var runners = new Dictionary<string, IVariantRunner>(StringComparer.Ordinal);
        var states = new List<VariantState>();
        try
        {
            foreach (var variant in model.Variants)
            {
                var started = Stopwatch.GetTimestamp();
                IVariantRunner runner;
                try
                {
                    runner = CreateRunner(model, variant, options);
                }
                catch (ProviderUnavailableException e)
                {
                    OnnxLog.VariantSkipped(logger, model.Name, variant.Name, variant.Provider.ToManifestName(), e.Message);
                    states.Add(new VariantState(variant, false, e.Message));
                    continue;
                }

                runners.Add(variant.Name, runner);
                Warm(model, runner, options.WarmupRuns);
                states.Add(new VariantState(variant, true, null));
                OnnxLog.VariantLoaded(logger, model.Name, variant.Name, variant.Kind.ToManifestName(), variant.Provider.ToManifestName(), Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            }
        }
        catch
        {
            foreach (var runner in runners.Values)
            {
                runner.Dispose();
            }

            throw;
        }

        // With one intra-op thread and sequential execution ONNX Runtime computes on the calling
        // thread, whose own CPU clock then times the run exactly; otherwise its pool threads work
        // too and only the process clock sees them.
        var singleThreaded = options.IntraOpThreads == 1 && options.InterOpThreads <= 1;
        return new ModelRuntime(model, runners, states, CpuClock.Best(singleThreaded ? CpuClockScope.Thread : CpuClockScope.Process));
    }

    /// <summary>
    /// Runs a loaded variant. Inputs are already validated against the model. Cancelling the token
    /// terminates a run in progress.
    /// </summary>
    /// <exception cref="OperationCanceledException">The run was terminated because the token was cancelled.</exception>
    public RunResult Run(string variant, IReadOnlyList<NamedTensor> inputs, IReadOnlyList<string> outputs, double exitThreshold, CancellationToken cancellationToken)
    {
        var runner = _runners[variant];
        cancellationToken.ThrowIfCancellationRequested();
        using var runOptions = new RunOptions();
        using var registration = cancellationToken.Register(static o => ((RunOptions)o!).Terminate = true, runOptions);
        try
        {
            var cpuBefore = CpuClock.Nanoseconds(_cpuClock);
            var result = runner.Run(inputs, outputs, exitThreshold, runOptions);
            return result with { CpuNanoseconds = CpuClock.Nanoseconds(_cpuClock) - cpuBefore, CpuTimeScope = _cpuClock };
        }
        catch (OnnxRuntimeException) when (cancellationToken.IsCancellationRequested)
        {
            throw new OperationCanceledException("The run was terminated because its request was cancelled.", cancellationToken);
        }
    }

    public void Dispose()
    {
        foreach (var runner in _runners.Values)
        {
            runner.Dispose();
        }
    }

    private static IVariantRunner CreateRunner(ModelDefinition model, VariantDefinition variant, OnnxOptions options)
    {
        if (variant.Kind != VariantKind.EarlyExit)
        {
            return new SingleSessionRunner(SessionFactory.Create(variant.Stages[0].Path, variant.Provider, options));
        }

        var sessions = new List<(InferenceSession, string)>();
        try
        {
            foreach (var stage in variant.Stages)
            {
                sessions.Add((SessionFactory.Create(stage.Path, variant.Provider, options), stage.ExitOutput!));
            }
        }
        catch
        {
            foreach (var (session, _) in sessions)
            {
                session.Dispose();
            }

            throw;
        }

        return new EarlyExitRunner(sessions, model.Outputs[0].Name);
    }

    /// <summary>The first runs after a session is created cost more than steady ones: pay them before serving.</summary>
    private static void Warm(ModelDefinition model, IVariantRunner runner, int runs)
    {
        var inputs = model.Inputs.Select(ZeroTensor).ToList();
        var outputs = model.Outputs.Select(o => o.Name).ToList();
        using var runOptions = new RunOptions();
        for (var i = 0; i < runs; i++)
        {
            runner.Run(inputs, outputs, exitThreshold: 1.0, runOptions);
        }
    }

    private static NamedTensor ZeroTensor(TensorSpec spec)
    {
        var shape = spec.Shape.Select(d => d < 0 ? 1L : d).ToArray();
        return spec.DataType == DataType.Bytes
            ? NamedTensor.FromStrings(spec.Name, shape, Enumerable.Repeat(ReadOnlyMemory<byte>.Empty, (int)Shapes.ElementCount(shape)).ToList())
            : NamedTensor.FromBytes(spec.Name, spec.DataType, shape, new byte[Shapes.ElementCount(shape) * spec.DataType.ElementSize()]);
    }
}
