using EffServe.Core.Tensors;
using EffServe.Core.Zoo;
using YamlDotNet.Core;
using YamlDotNet.Serialization;
using YamlDotNet.Serialization.NamingConventions;

namespace EffServe.Cli.Inference;

/// <summary>One sample of a model's evaluation set: a batch of one per input, and its true class.</summary>
/// <param name="Index">The sample's index in the evaluation set.</param>
/// <param name="SampleCount">How many samples the evaluation set has.</param>
/// <param name="Inputs">Input name → the sample's data, shaped as a batch of one.</param>
/// <param name="TrueClass">The class the evaluation set records for the sample; null when it has no labels.</param>
public sealed record EvalSample(int Index, int SampleCount, IReadOnlyDictionary<string, NpyArray> Inputs, long? TrueClass);

/// <summary>
/// Reads samples of a model's evaluation set from a local zoo folder. Only the manifest's
/// <c>evaluation</c> section matters here: the model files are not opened.
/// </summary>
public static class EvalSet
{
    public const string EnvironmentVariable = "EFFSERVE_ZOO";

    public const string DefaultFolder = "zoo";

    private static readonly IDeserializer s_yaml = new DeserializerBuilder()
        .WithNamingConvention(UnderscoredNamingConvention.Instance)
        .IgnoreUnmatchedProperties()
        .Build();

    /// <summary>The zoo folder: the option when given, else EFFSERVE_ZOO, else ./zoo.</summary>
    public static string ResolveZoo(string? option, Func<string, string?> getEnvironmentVariable, string workingDirectory)
    {
        var folder = !string.IsNullOrWhiteSpace(option)
            ? option
            : getEnvironmentVariable(EnvironmentVariable) is { Length: > 0 } fromEnvironment ? fromEnvironment : DefaultFolder;
        return Path.GetFullPath(folder, workingDirectory);
    }

    /// <summary>Sample <paramref name="index"/> of <paramref name="model"/>'s evaluation set in <paramref name="zoo"/>.</summary>
    /// <exception cref="CliException">
    /// The manifest or an .npy file is missing or unreadable (invalid input), or the index is out of
    /// range (usage).
    /// </exception>
    public static EvalSample LoadSample(string zoo, string model, int index)
    {
        var folder = Path.Combine(zoo, model);
        var manifestPath = Path.Combine(folder, "model.yaml");
        if (!File.Exists(manifestPath))
        {
            throw CliException.InvalidInput($"no manifest at {manifestPath}: --sample reads the model's evaluation set from a local zoo folder; point --zoo (or {EnvironmentVariable}) at it, or send a file with --input.");
        }

        var evaluation = ReadEvaluation(manifestPath);
        if (evaluation?.Inputs is not { Count: > 0 } inputFiles)
        {
            throw CliException.InvalidInput($"{manifestPath} declares no evaluation set (evaluation.inputs); send a file with --input instead.");
        }

        var inputs = new Dictionary<string, NpyArray>(inputFiles.Count, StringComparer.Ordinal);
        var sampleCount = -1;
        foreach (var (name, relative) in inputFiles)
        {
            var array = ReadNpy(folder, relative, $"evaluation.inputs.{name}");
            if (array.Shape.Count == 0)
            {
                throw CliException.InvalidInput($"{Path.Combine(folder, relative)} is a scalar; an evaluation input needs the sample dimension first.");
            }

            var count = (int)Math.Min(array.Shape[0], int.MaxValue);
            sampleCount = sampleCount < 0 ? count : Math.Min(sampleCount, count);
            CheckIndex(index, count, model);
            inputs[name] = Row(array, index);
        }

        long? trueClass = null;
        if (!string.IsNullOrWhiteSpace(evaluation.Labels))
        {
            var labels = ReadNpy(folder, evaluation.Labels, "evaluation.labels");
            var count = labels.Shape.Count == 0 ? 0 : (int)Math.Min(labels.Shape[0], int.MaxValue);
            sampleCount = Math.Min(sampleCount, count);
            CheckIndex(index, count, model);
            trueClass = ClassAt(labels, index, Path.Combine(folder, evaluation.Labels));
        }

        return new EvalSample(index, sampleCount, inputs, trueClass);
    }

    /// <summary>Entry <paramref name="index"/> along the first dimension, as a batch of one.</summary>
    public static NpyArray Row(NpyArray array, int index)
    {
        var rowBytes = array.RowBytes;
        var data = array.Data.AsSpan(checked(index * rowBytes), rowBytes).ToArray();
        var shape = new long[array.Shape.Count];
        shape[0] = 1;
        for (var i = 1; i < shape.Length; i++)
        {
            shape[i] = array.Shape[i];
        }

        return new NpyArray(array.DataType, shape, data);
    }

    private static EvaluationDocument? ReadEvaluation(string manifestPath)
    {
        try
        {
            using var reader = File.OpenText(manifestPath);
            return s_yaml.Deserialize<ManifestDocument?>(reader)?.Evaluation;
        }
        catch (YamlException e)
        {
            throw CliException.InvalidInput($"{manifestPath}: line {e.Start.Line}: {e.InnerException?.Message ?? e.Message}", e);
        }
    }

    private static NpyArray ReadNpy(string folder, string relative, string key)
    {
        var path = Path.GetFullPath(relative, folder);
        if (!File.Exists(path))
        {
            throw CliException.InvalidInput($"{key}: {path} does not exist.");
        }

        try
        {
            return NpyArray.Read(path);
        }
        catch (Exception e) when (e is FormatException or ArgumentException or IOException)
        {
            throw CliException.InvalidInput($"{key}: {e.Message}", e);
        }
    }

    private static void CheckIndex(int index, int count, string model)
    {
        if (index < 0 || index >= count)
        {
            throw CliException.Usage(count == 0
                ? $"--sample {index}: the evaluation set of '{model}' is empty."
                : $"--sample {index} is out of range: the evaluation set of '{model}' has {count} samples (0 to {count - 1}).");
        }
    }

    private static long ClassAt(NpyArray labels, int index, string path)
    {
        try
        {
            return labels.ClassIndex(index);
        }
        catch (FormatException e)
        {
            throw CliException.InvalidInput($"{path}: {e.Message}");
        }
    }
}
