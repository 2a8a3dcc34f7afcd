using System.Diagnostics;
using EffServe.Core.Accounting;
using EffServe.Core.EarlyExit;
using EffServe.Core.Tensors;
using EffServe.Core.Zoo;
using Microsoft.ML.OnnxRuntime;

namespace EffServe.Onnx;

/// <summary>What one run produced.</summary>
/// <param name="Outputs">The requested outputs.</param>
/// <param name="ExitStages">For early exit: per sample, the 1-based stage it left at; null otherwise.</param>
/// <param name="StagesRun">How many stage models ran (1 for single-file variants).</param>
/// <param name="StageSampleRuns">Sum over stages of the samples each stage computed: the work done.</param>
public sealed record RunResult(IReadOnlyList<NamedTensor> Outputs, int[]? ExitStages, int StagesRun, long StageSampleRuns)
{
    /// <summary>CPU time the run took, in nanoseconds, of the scope <see cref="CpuTimeScope"/> says.</summary>
    public long CpuNanoseconds { get; init; }

    /// <summary>Whose CPU time <see cref="CpuNanoseconds"/> counts: the running thread's, or the whole process's.</summary>
    public CpuClockScope CpuTimeScope { get; init; }

    /// <summary>Early exit: each stage that ran, in order, with its samples and its time; empty otherwise.</summary>
    public IReadOnlyList<StageRun> Stages { get; init; } = [];
}

/// <summary>One stage of an early-exit run.</summary>
/// <param name="Stage">1-based stage number.</param>
/// <param name="SamplesIn">Samples that entered the stage.</param>
/// <param name="SamplesExited">Samples that left at the stage's exit.</param>
/// <param name="StartTimestamp">When the stage began (<see cref="System.Diagnostics.Stopwatch.GetTimestamp"/>).</param>
/// <param name="EndTimestamp">When its exit decisions were made.</param>
public readonly record struct StageRun(int Stage, int SamplesIn, int SamplesExited, long StartTimestamp, long EndTimestamp);

/// <summary>Runs one variant of a model.</summary>
internal interface IVariantRunner : IDisposable
{
    RunResult Run(IReadOnlyList<NamedTensor> inputs, IReadOnlyList<string> outputs, double exitThreshold, RunOptions runOptions);
}

/// <summary>A variant that is one ONNX graph (fp32, int8, fp16).</summary>
internal sealed class SingleSessionRunner : IVariantRunner
{
    private readonly InferenceSession _session;

    public SingleSessionRunner(InferenceSession session)
    {
        _session = session;
    }

    public RunResult Run(IReadOnlyList<NamedTensor> inputs, IReadOnlyList<string> outputs, double exitThreshold, RunOptions runOptions)
    {
        using var values = OrtTensorConversion.ToOrtValues(inputs);
        using var results = _session.Run(runOptions, values.Names, values.Values, outputs);
        var tensors = new NamedTensor[outputs.Count];
        var i = 0;
        foreach (var result in results)
        {
            tensors[i] = OrtTensorConversion.FromOrtValue(outputs[i], result);
            i++;
        }

        var batch = inputs.Count > 0 && inputs[0].Shape.Length > 0 ? inputs[0].Shape[0] : 1;
        return new RunResult(tensors, null, 1, batch);
    }

    public void Dispose() => _session.Dispose();
}

/// <summary>
/// A chain of stage graphs. After each stage, every sample whose exit head is confident enough
/// leaves with that exit's logits; the rest go on to the next stage as a smaller batch.
/// </summary>
internal sealed class EarlyExitRunner : IVariantRunner
{
    private readonly Stage[] _stages;
    private readonly string _outputName;

    public EarlyExitRunner(IReadOnlyList<(InferenceSession Session, string Exit)> stages, string outputName)
    {
        _outputName = outputName;
        _stages = new Stage[stages.Count];
        for (var k = 0; k < stages.Count; k++)
        {
            var (session, exit) = stages[k];
            // A stage computes its exit and whatever the next stage reads.
            var feeds = k + 1 < stages.Count ? stages[k + 1].Session.InputNames : [];
            var fetch = new List<string> { exit };
            fetch.AddRange(feeds.Where(f => f != exit));
            _stages[k] = new Stage(session, exit, fetch);
        }
    }

    public RunResult Run(IReadOnlyList<NamedTensor> inputs, IReadOnlyList<string> outputs, double exitThreshold, RunOptions runOptions)
    {
        var batch = checked((int)inputs[0].Shape[0]);
        var exitStages = new int[batch];
        float[]? logits = null;
        long[]? logitsShape = null;
        var active = Enumerable.Range(0, batch).ToArray();
        long work = 0;
        var stagesRun = 0;
        var stageRuns = new List<StageRun>(_stages.Length);

        using var modelInputs = OrtTensorConversion.ToOrtValues(inputs);
        var names = modelInputs.Names;
        var values = modelInputs.Values;
        IDisposableReadOnlyCollection<OrtValue>? previous = null;
        var owned = new List<OrtValue>();
        try
        {
            for (var k = 0; k < _stages.Length && active.Length > 0; k++)
            {
                var stage = _stages[k];
                var stageStarted = Stopwatch.GetTimestamp();
                var results = stage.Session.Run(runOptions, names, values, stage.Fetch);
                stagesRun++;
                work += active.Length;
                var exit = results[0];
                var shape = exit.GetTensorTypeAndShape().Shape;
                var classes = checked((int)(shape.Skip(1).Aggregate(1L, (a, b) => a * b)));
                if (logits is null)
                {
                    logits = new float[batch * classes];
                    logitsShape = (long[])shape.Clone();
                    logitsShape[0] = batch;
                }

                var rows = exit.GetTensorDataAsSpan<float>();
                var last = k == _stages.Length - 1;
                var stay = new List<int>(active.Length);
                for (var r = 0; r < active.Length; r++)
                {
                    var row = rows.Slice(r * classes, classes);
                    if (last || ExitRule.ShouldExit(ExitRule.TopProbability(row), exitThreshold))
                    {
                        row.CopyTo(logits.AsSpan(active[r] * classes, classes));
                        exitStages[active[r]] = k + 1;
                    }
                    else
                    {
                        stay.Add(r);
                    }
                }

                stageRuns.Add(new StageRun(k + 1, active.Length, active.Length - stay.Count, stageStarted, Stopwatch.GetTimestamp()));

                // Hand the survivors' features to the next stage, compacted when some samples left.
                DisposeAll(owned);
                previous?.Dispose();
                previous = results;
                if (stay.Count == 0 || last)
                {
                    break;
                }

                var next = _stages[k + 1];
                names = [.. next.Session.InputNames];
                values = [];
                foreach (var name in names)
                {
                    var produced = results[stage.Fetch.IndexOf(name)];
                    if (stay.Count == active.Length)
                    {
                        values.Add(produced);
                    }
                    else
                    {
                        var gathered = OrtTensorConversion.GatherRows(produced, stay);
                        owned.Add(gathered);
                        values.Add(gathered);
                    }
                }

                active = stay.Select(r => active[r]).ToArray();
            }
        }
        finally
        {
            DisposeAll(owned);
            previous?.Dispose();
        }

        var bytes = new byte[logits!.Length * sizeof(float)];
        Buffer.BlockCopy(logits, 0, bytes, 0, bytes.Length);
        var output = NamedTensor.FromBytes(_outputName, DataType.Fp32, logitsShape!, bytes);
        return new RunResult(outputs.Count == 0 ? [] : [output], exitStages, stagesRun, work) { Stages = stageRuns };
    }

    public void Dispose()
    {
        foreach (var stage in _stages)
        {
            stage.Session.Dispose();
        }
    }

    private static void DisposeAll(List<OrtValue> values)
    {
        foreach (var v in values)
        {
            v.Dispose();
        }

        values.Clear();
    }

    private sealed record Stage(InferenceSession Session, string Exit, List<string> Fetch);
}
