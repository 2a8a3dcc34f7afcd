using EffServe.Core.Zoo;

namespace EffServe.Zoo.Data;

/// <summary>Samples to run a model on, where they came from, and their labels when known.</summary>
public sealed record ResolvedSamples(SampleSet Samples, string Source, long[]? Labels);

/// <summary>Finds the samples a tool runs a model on: the evaluation set, given files, or seeded random inputs.</summary>
public static class SampleSources
{
    public const string Evaluation = "eval";
    public const string Random = "random";

    /// <summary>Random samples when neither an evaluation set nor files are given.</summary>
    public const int DefaultRandomSamples = 32;

    /// <summary>
    /// Resolves <paramref name="spec"/>: "eval" (the model's evaluation set), "random", a .npy
    /// file (single-input models), or input=file.npy pairs separated by commas. At most
    /// <paramref name="limit"/> samples are kept.
    /// </summary>
    /// <exception cref="ZooToolException">There is no evaluation set (InvalidArgument), or the data does not fit the model (InvalidData).</exception>
    public static ResolvedSamples Resolve(ModelDefinition model, string spec, int? limit, int seed, string option)
    {
        ResolvedSamples resolved;
        if (spec == Evaluation)
        {
            if (model.Evaluation is not { } evaluation)
            {
                throw new ZooToolException(ZooToolError.InvalidArgument, $"model '{model.Name}' has no evaluation set; give {option} a .npy file of samples, or {option} {Random} for seeded random inputs.");
            }

            var labels = SampleSet.ReadLabels(evaluation.LabelsFile);
            resolved = new ResolvedSamples(SampleSet.FromEvaluation(evaluation), "evaluation set", labels);
        }
        else if (spec == Random)
        {
            var count = limit ?? DefaultRandomSamples;
            resolved = new ResolvedSamples(SampleSet.Random(model.Inputs, model.HasBatchDimension, count, seed), $"random inputs (seed {seed})", null);
        }
        else
        {
            var files = ParseFiles(spec, model, option);
            resolved = new ResolvedSamples(new SampleSet(files.ToDictionary(kv => kv.Key, kv => SampleSet.ReadNpy(kv.Value), StringComparer.Ordinal)), spec, null);
        }

        resolved.Samples.CheckFits(model.Inputs, model.HasBatchDimension, resolved.Source);
        if (limit is { } n && n < resolved.Samples.Count)
        {
            resolved = resolved with
            {
                Samples = resolved.Samples.Take(n),
                Labels = resolved.Labels?[..n],
                Source = spec == Random ? resolved.Source : $"{resolved.Source}, first {n}",
            };
        }

        return resolved;
    }

    /// <summary>The evaluation set when the model has one, else seeded random inputs.</summary>
    public static ResolvedSamples EvaluationOrRandom(ModelDefinition model, int? limit, int seed) =>
        Resolve(model, model.Evaluation is null ? Random : Evaluation, limit, seed, "--samples");

    private static Dictionary<string, string> ParseFiles(string spec, ModelDefinition model, string option)
    {
        var files = new Dictionary<string, string>(StringComparer.Ordinal);
        if (!spec.Contains('=', StringComparison.Ordinal))
        {
            if (model.Inputs.Count != 1)
            {
                throw new ZooToolException(ZooToolError.InvalidArgument, $"model '{model.Name}' has {model.Inputs.Count} inputs; give {option} one input=file.npy pair per input, separated by commas.");
            }

            files[model.Inputs[0].Name] = spec;
            return files;
        }

        foreach (var pair in spec.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var at = pair.IndexOf('=', StringComparison.Ordinal);
            if (at <= 0)
            {
                throw new ZooToolException(ZooToolError.InvalidArgument, $"{option} '{pair}' is not input=file.npy.");
            }

            files[pair[..at]] = pair[(at + 1)..];
        }

        return files;
    }
}
