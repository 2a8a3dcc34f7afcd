using System.Runtime.InteropServices;
using EffServe.Contracts.Inference;
using EffServe.Core.Protocol;
using EffServe.Core.Tensors;
using EffServe.Core.Zoo;
using Google.Protobuf;
using YamlDotNet.Core;
using YamlDotNet.Serialization;
using YamlDotNet.Serialization.NamingConventions;

namespace EffServe.LoadGen;

/// <summary>
/// A model's evaluation set as the load generator sends it: one request per (SLO class, sample),
/// built once before the run, with raw tensor contents that point into the .npy data (no copy per
/// request), and the true class of every sample for scoring answers.
/// </summary>
public sealed class Workload
{
    private static readonly IDeserializer s_yaml = new DeserializerBuilder()
        .WithNamingConvention(UnderscoredNamingConvention.Instance)
        .IgnoreUnmatchedProperties()
        .Build();

    private readonly ModelInferRequest[][] _requests;

    private Workload(string model, LoadMix mix, ModelInferRequest[][] requests, long[]? labels, int sampleCount)
    {
        Model = model;
        Mix = mix;
        _requests = requests;
        Labels = labels;
        SampleCount = sampleCount;
    }

    public string Model { get; }

    public LoadMix Mix { get; }

    /// <summary>The true class of each sample; null when the evaluation set has no labels.</summary>
    public IReadOnlyList<long>? Labels { get; }

    public int SampleCount { get; }

    /// <summary>The prepared request for a sample of a class; shared by every send, never modified.</summary>
    public ModelInferRequest Request(int classIndex, int sample) => _requests[classIndex][sample];

    /// <summary>
    /// Reads <paramref name="model"/>'s evaluation set from the zoo folder (the manifest's
    /// <c>evaluation</c> section) and prepares the requests of every class in <paramref name="mix"/>.
    /// </summary>
    /// <param name="zoo">The zoo folder.</param>
    /// <param name="model">The model (a folder of the zoo).</param>
    /// <param name="mix">The SLO classes.</param>
    /// <param name="maxSamples">Use at most this many samples (the first ones); 0 for all.</param>
    /// <exception cref="LoadGenException">The manifest or an .npy file is missing or unusable.</exception>
    public static Workload Load(string zoo, string model, LoadMix mix, int maxSamples = 0)
    {
        var folder = Path.Combine(zoo, model);
        var manifestPath = Path.Combine(folder, ZooLoader.ManifestFileName);
        if (!File.Exists(manifestPath))
        {
            throw new LoadGenException($"no manifest at {manifestPath}: the load generator sends the model's evaluation set from a local zoo folder; point --zoo at it.");
        }

        ManifestDocument? manifest;
        try
        {
            using var reader = File.OpenText(manifestPath);
            manifest = s_yaml.Deserialize<ManifestDocument?>(reader);
        }
        catch (YamlException e)
        {
            throw new LoadGenException($"{manifestPath}: line {e.Start.Line}: {e.InnerException?.Message ?? e.Message}", e);
        }

        if (manifest?.Evaluation?.Inputs is not { Count: > 0 } inputFiles)
        {
            throw new LoadGenException($"{manifestPath} declares no evaluation set (evaluation.inputs); the load generator needs one.");
        }

        // Inputs in the manifest's order where it lists them, else the evaluation section's.
        var order = manifest.Inputs?.Select(i => i.Name).OfType<string>().Where(inputFiles.ContainsKey).ToList() ?? [];
        order.AddRange(inputFiles.Keys.Where(k => !order.Contains(k)));
        var arrays = order.Select(name => (Name: name, Array: ReadNpy(folder, inputFiles[name], $"evaluation.inputs.{name}"))).ToList();
        var count = arrays.Min(a => a.Array.Shape.Count == 0 ? 0 : (int)Math.Min(a.Array.Shape[0], int.MaxValue));
        long[]? labels = null;
        if (!string.IsNullOrWhiteSpace(manifest.Evaluation.Labels))
        {
            labels = ReadLabels(ReadNpy(folder, manifest.Evaluation.Labels, "evaluation.labels"), Path.Combine(folder, manifest.Evaluation.Labels));
            count = Math.Min(count, labels.Length);
        }

        if (maxSamples > 0)
        {
            count = Math.Min(count, maxSamples);
        }

        if (count == 0)
        {
            throw new LoadGenException($"the evaluation set of '{model}' in {folder} is empty.");
        }

        var requests = new ModelInferRequest[mix.Classes.Count][];
        for (var c = 0; c < requests.Length; c++)
        {
            var parameters = ParametersOf(mix.Classes[c]);
            requests[c] = new ModelInferRequest[count];
            for (var s = 0; s < count; s++)
            {
                var request = new ModelInferRequest { ModelName = model };
                request.Parameters.Add(parameters);
                foreach (var (name, array) in arrays)
                {
                    var tensor = new ModelInferRequest.Types.InferInputTensor { Name = name, Datatype = array.DataType.ToWireName() };
                    tensor.Shape.Add(1);
                    tensor.Shape.Add(array.Shape.Skip(1));
                    request.Inputs.Add(tensor);
                    request.RawInputContents.Add(UnsafeByteOperations.UnsafeWrap(array.Data.AsMemory(s * array.RowBytes, array.RowBytes)));
                }

                requests[c][s] = request;
            }
        }

        return new Workload(model, mix, requests, labels?[..count], count);
    }

    /// <summary>The request parameters a class carries: its SLO, and its floor, priority and timeout when set.</summary>
    public static Dictionary<string, InferParameter> ParametersOf(SloClass slo)
    {
        var parameters = new Dictionary<string, InferParameter>(StringComparer.Ordinal)
        {
            [ParameterNames.SloMs] = new() { DoubleParam = slo.SloMs },
        };
        if (slo.MinAccuracy is { } floor)
        {
            parameters[ParameterNames.MinAccuracy] = new() { DoubleParam = floor };
        }

        if (slo.Priority is { } priority)
        {
            parameters[ParameterNames.Priority] = new() { Int64Param = priority };
        }

        if (slo.TimeoutUs is { } timeout)
        {
            parameters[ParameterNames.Timeout] = new() { Int64Param = timeout };
        }

        return parameters;
    }

    /// <summary>
    /// The class the first output ranks highest (argmax over FP32 scores, raw or typed contents);
    /// null when the response has no FP32 output to rank.
    /// </summary>
    public static long? PredictedClass(ModelInferResponse response)
    {
        if (response.Outputs.Count == 0 || response.Outputs[0].Datatype != "FP32")
        {
            return null;
        }

        ReadOnlySpan<float> scores = response.RawOutputContents.Count > 0
            ? MemoryMarshal.Cast<byte, float>(response.RawOutputContents[0].Span)
            : response.Outputs[0].Contents?.Fp32Contents is { Count: > 0 } typed ? typed.ToArray() : default;
        if (scores.IsEmpty)
        {
            return null;
        }

        var best = 0;
        for (var i = 1; i < scores.Length; i++)
        {
            if (scores[i] > scores[best])
            {
                best = i;
            }
        }

        return best;
    }

    private static NpyArray ReadNpy(string folder, string relative, string key)
    {
        var path = Path.GetFullPath(relative, folder);
        if (!File.Exists(path))
        {
            throw new LoadGenException($"{key}: {path} does not exist.");
        }

        try
        {
            var array = NpyArray.Read(path);
            return array.Shape.Count > 0
                ? array
                : throw new LoadGenException($"{key}: {path} is a scalar; evaluation data needs the sample dimension first.");
        }
        catch (Exception e) when (e is FormatException or ArgumentException or IOException)
        {
            throw new LoadGenException($"{key}: {e.Message}", e);
        }
    }

    private static long[] ReadLabels(NpyArray labels, string path)
    {
        try
        {
            return [.. Enumerable.Range(0, (int)labels.Shape[0]).Select(labels.ClassIndex)];
        }
        catch (FormatException e)
        {
            throw new LoadGenException($"{path}: {e.Message}", e);
        }
    }
}
