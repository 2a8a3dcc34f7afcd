using EffServe.Zoo.Data;
using EffServe.Zoo.Onnx;
using Microsoft.ML.OnnxRuntime;

namespace EffServe.Zoo.EarlyExit;

/// <summary>How far the chained stages are from the full model, per exit.</summary>
/// <param name="MaxAbsDifference">Exit output name → largest absolute difference over every sample and element.</param>
/// <param name="Samples">Samples compared.</param>
/// <param name="Source">Where the samples came from.</param>
public sealed record StageCheck(IReadOnlyDictionary<string, double> MaxAbsDifference, int Samples, string Source)
{
    public double Worst => MaxAbsDifference.Values.DefaultIfEmpty(0).Max();
}

/// <summary>Runs the stages in turn, batch by batch, and compares every exit with the full model's.</summary>
public static class StageVerifier
{
    /// <summary>Differences above this fail the split.</summary>
    public const double Tolerance = 1e-5;

    public static StageCheck Compare(
        OnnxModel full,
        IReadOnlyList<StageModel> stages,
        SampleSet samples,
        bool hasBatchDimension,
        string source,
        IProgressStep? progress = null,
        CancellationToken cancellationToken = default)
    {
        var exits = stages.Select(s => s.Exit).ToList();
        using var reference = OrtRunner.Open(full.ToBytes());
        var sessions = stages.Select(s => OrtRunner.Open(s.Model.ToBytes())).ToList();
        var worst = exits.ToDictionary(e => e, _ => 0.0, StringComparer.Ordinal);
        try
        {
            using var runOptions = new RunOptions();
            OrtRunner.Run(reference, samples, hasBatchDimension, exits, (start, count, expected) =>
            {
                // Stage 1 reads the model's inputs; stage k reads what stage k - 1 wrote.
                var feeds = new Dictionary<string, OrtValue>(StringComparer.Ordinal);
                var owned = new List<IDisposable>();
                try
                {
                    foreach (var name in samples.Inputs.Keys)
                    {
                        var value = OrtRunner.CreateBatch(samples, name, start, count, hasBatchDimension);
                        owned.Add(value);
                        feeds[name] = value;
                    }

                    for (var k = 0; k < stages.Count; k++)
                    {
                        var inputs = stages[k].Inputs;
                        var results = OrtRunner.RunChecked(sessions[k], runOptions, inputs.ToList(), inputs.Select(i => feeds[i]).ToList(), stages[k].Outputs.ToList());
                        owned.Add(results);
                        for (var o = 0; o < stages[k].Outputs.Count; o++)
                        {
                            feeds[stages[k].Outputs[o]] = results[o];
                        }

                        var got = results[0].GetTensorDataAsSpan<float>();
                        var want = expected[k].GetTensorDataAsSpan<float>();
                        var difference = got.Length == want.Length ? 0.0 : double.PositiveInfinity;
                        for (var i = 0; i < Math.Min(got.Length, want.Length); i++)
                        {
                            var d = Math.Abs((double)got[i] - want[i]);
                            difference = double.IsNaN(d) ? double.PositiveInfinity : Math.Max(difference, d);
                        }

                        worst[exits[k]] = Math.Max(worst[exits[k]], difference);
                    }
                }
                finally
                {
                    foreach (var d in owned)
                    {
                        d.Dispose();
                    }
                }
            }, progress: progress, cancellationToken: cancellationToken);
        }
        finally
        {
            foreach (var session in sessions)
            {
                session.Dispose();
            }
        }

        return new StageCheck(worst, samples.Count, source);
    }
}
