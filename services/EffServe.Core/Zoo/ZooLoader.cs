using System.Globalization;
using System.Security.Cryptography;
using EffServe.Core.Tensors;
using YamlDotNet.Core;
using YamlDotNet.Serialization;
using YamlDotNet.Serialization.NamingConventions;

namespace EffServe.Core.Zoo;

/// <summary>
/// Loads model manifests and checks them against the ONNX files they name. Every problem is
/// collected with where it is, and reported together in one <see cref="ZooValidationException"/>.
/// </summary>
public sealed class ZooLoader
{
    public const string ManifestFileName = "model.yaml";

    /// <summary>Confidence threshold of an early-exit variant whose manifest sets none.</summary>
    public const double DefaultExitThreshold = 0.9;

    private static readonly IDeserializer s_yaml = new DeserializerBuilder()
        .WithNamingConvention(UnderscoredNamingConvention.Instance)
        .WithDuplicateKeyChecking()
        .Build();

    private readonly IGraphReader _graphs;

    public ZooLoader(IGraphReader graphs)
    {
        _graphs = graphs;
    }

    /// <summary>
    /// Loads every model folder (a folder holding model.yaml) directly under <paramref name="zooDirectory"/>,
    /// or only the named ones.
    /// </summary>
    public IReadOnlyList<ModelDefinition> LoadZoo(string zooDirectory, IReadOnlyCollection<string>? only = null)
    {
        var problems = new List<string>();
        var models = new List<ModelDefinition>();
        var root = Path.GetFullPath(zooDirectory);
        if (!Directory.Exists(root))
        {
            throw new ZooValidationException($"The zoo folder '{root}' does not exist.");
        }

        var folders = Directory.EnumerateDirectories(root)
            .Where(d => File.Exists(Path.Combine(d, ManifestFileName)))
            .OrderBy(d => d, StringComparer.Ordinal)
            .ToList();
        var names = folders.Select(Path.GetFileName).ToHashSet(StringComparer.Ordinal);
        foreach (var wanted in only ?? [])
        {
            if (!names.Contains(wanted))
            {
                problems.Add($"{root}: no model folder '{wanted}' with a {ManifestFileName} (models found: {Join(names)}).");
            }
        }

        foreach (var folder in folders)
        {
            if (only is { Count: > 0 } && !only.Contains(Path.GetFileName(folder)))
            {
                continue;
            }

            var model = TryLoadModel(folder, problems);
            if (model is not null)
            {
                models.Add(model);
            }
        }

        if (folders.Count == 0)
        {
            problems.Add($"{root}: no model folders (a model folder holds a {ManifestFileName}).");
        }

        if (problems.Count > 0)
        {
            throw new ZooValidationException($"The zoo at {root}", problems);
        }

        return models;
    }

    /// <summary>Loads one model folder.</summary>
    public ModelDefinition LoadModel(string modelDirectory)
    {
        var problems = new List<string>();
        var model = TryLoadModel(modelDirectory, problems);
        if (model is null || problems.Count > 0)
        {
            throw new ZooValidationException($"The model at {Path.GetFullPath(modelDirectory)}", problems);
        }

        return model;
    }

    private ModelDefinition? TryLoadModel(string modelDirectory, List<string> problems)
    {
        var directory = Path.GetFullPath(modelDirectory);
        var manifestPath = Path.Combine(directory, ManifestFileName);
        var p = new Problems(manifestPath, problems);
        var before = problems.Count;

        ManifestDocument? doc;
        try
        {
            doc = s_yaml.Deserialize<ManifestDocument>(File.ReadAllText(manifestPath));
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            problems.Add($"{manifestPath}: the manifest does not exist.");
            return null;
        }
        catch (YamlException e)
        {
            problems.Add($"{manifestPath}:{e.Start.Line}:{e.Start.Column}: {DescribeYamlError(e)}");
            return null;
        }

        if (doc is null)
        {
            p.Add("", "the manifest is empty.");
            return null;
        }

        var folderName = Path.GetFileName(directory);
        var name = doc.Name ?? folderName;
        if (name != folderName)
        {
            p.Add("name", $"'{name}' differs from the model's folder name '{folderName}'; they must be equal.");
        }

        CheckIdentifier(p, "name", name);
        var version = doc.Version ?? "1";
        CheckIdentifier(p, "version", version);
        if (string.IsNullOrWhiteSpace(doc.Task))
        {
            p.Add("task", "is required (for example image-classification).");
        }

        var maxBatch = doc.MaxBatchSize ?? 0;
        if (maxBatch < 0)
        {
            p.Add("max_batch_size", $"is {maxBatch}; it must be 0 (no batch dimension) or positive.");
        }

        var inputs = ReadTensors(p, "inputs", doc.Inputs, maxBatch);
        var outputs = ReadTensors(p, "outputs", doc.Outputs, maxBatch);
        var labels = ReadLabels(p, directory, doc, outputs);
        var evaluation = ReadEvaluation(p, directory, doc.Evaluation, inputs, maxBatch);
        var variants = ReadVariants(p, directory, doc.Variants, inputs, outputs, maxBatch);

        var defaultVariant = doc.DefaultVariant ?? variants.FirstOrDefault()?.Name ?? "";
        if (doc.DefaultVariant is not null && variants.All(v => v.Name != doc.DefaultVariant) && doc.Variants?.All(v => v.Name != doc.DefaultVariant) == true)
        {
            p.Add("default_variant", $"names '{doc.DefaultVariant}', which is not a variant (variants: {Join(doc.Variants.Select(v => v.Name))}).");
        }

        if (problems.Count > before)
        {
            return null;
        }

        return new ModelDefinition(
            name, version, doc.Task!, doc.Description ?? "", directory, inputs, outputs, labels, maxBatch,
            evaluation, variants, defaultVariant, ComputeRevision(manifestPath, variants, doc.LabelsFile is null ? null : Path.Combine(directory, doc.LabelsFile)));
    }

    /// <summary>YamlDotNet's messages name .NET types; say what is wrong in the manifest's own terms.</summary>
    private static string DescribeYamlError(YamlException e)
    {
        var message = e.InnerException?.Message ?? e.Message;
        var unknown = System.Text.RegularExpressions.Regex.Match(message, "Property '([^']+)' not found on type");
        if (unknown.Success)
        {
            return $"unknown key '{unknown.Groups[1].Value}' (docs/zoo.md lists the keys a manifest may use).";
        }

        return message.Contains("Duplicate key", StringComparison.OrdinalIgnoreCase)
            ? $"a key is given twice: {message}"
            : message;
    }

    private static List<TensorSpec> ReadTensors(Problems p, string key, List<TensorDocument>? docs, int maxBatch)
    {
        var specs = new List<TensorSpec>();
        if (docs is null || docs.Count == 0)
        {
            p.Add(key, "needs at least one tensor (name, datatype, shape).");
            return specs;
        }

        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < docs.Count; i++)
        {
            var d = docs[i];
            var where = $"{key}[{i}]";
            var ok = true;
            if (string.IsNullOrWhiteSpace(d.Name))
            {
                p.Add(where + ".name", "is required.");
                ok = false;
            }
            else if (!seen.Add(d.Name))
            {
                p.Add(where + ".name", $"'{d.Name}' is used twice in {key}.");
                ok = false;
            }

            if (!DataTypes.TryParse(d.Datatype, out var type))
            {
                p.Add(where + ".datatype", $"'{d.Datatype}' is not a datatype; use one of {string.Join(", ", DataTypes.Names)}.");
                ok = false;
            }

            if (d.Shape is null)
            {
                p.Add(where + ".shape", "is required (use -1 for a dimension of variable size).");
                ok = false;
            }
            else
            {
                for (var j = 0; j < d.Shape.Count; j++)
                {
                    if (d.Shape[j] < -1 || d.Shape[j] == 0)
                    {
                        p.Add($"{where}.shape[{j}]", $"is {d.Shape[j]}; a dimension is positive, or -1 when its size varies.");
                        ok = false;
                    }
                }

                if (maxBatch > 0 && (d.Shape.Count == 0 || d.Shape[0] != -1))
                {
                    p.Add(where + ".shape", $"is {Shapes.Format(d.Shape)}; with max_batch_size > 0 the first dimension is the batch dimension and must be -1.");
                    ok = false;
                }
            }

            if (ok)
            {
                specs.Add(new TensorSpec(d.Name!, type, d.Shape!.ToArray()));
            }
        }

        return specs;
    }

    private static List<string> ReadLabels(Problems p, string directory, ManifestDocument doc, List<TensorSpec> outputs)
    {
        List<string> labels = [];
        if (doc.Labels is not null && doc.LabelsFile is not null)
        {
            p.Add("labels", "and labels_file are both set; use one.");
            return labels;
        }

        if (doc.Labels is not null)
        {
            labels = doc.Labels;
        }
        else if (doc.LabelsFile is not null)
        {
            var path = ResolveFile(p, "labels_file", directory, doc.LabelsFile);
            if (path is null)
            {
                return labels;
            }

            labels = File.ReadAllLines(path).Select(l => l.Trim()).Where(l => l.Length > 0).ToList();
        }

        if (labels.Count > 0 && outputs.Count == 1 && outputs[0].Shape.Count > 0 && outputs[0].Shape[^1] > 0 && outputs[0].Shape[^1] != labels.Count)
        {
            p.Add(doc.LabelsFile is null ? "labels" : "labels_file", $"has {labels.Count} labels but output '{outputs[0].Name}' has {outputs[0].Shape[^1]} classes.");
        }

        return labels;
    }

    private static EvaluationSetDefinition? ReadEvaluation(Problems p, string directory, EvaluationDocument? doc, List<TensorSpec> inputs, int maxBatch)
    {
        if (doc is null)
        {
            return null;
        }

        var files = new Dictionary<string, string>(StringComparer.Ordinal);
        long? samples = null;
        foreach (var (inputName, file) in doc.Inputs ?? [])
        {
            var where = $"evaluation.inputs.{inputName}";
            var spec = inputs.FirstOrDefault(i => i.Name == inputName);
            if (spec is null)
            {
                p.Add(where, $"names no model input (inputs: {Join(inputs.Select(i => i.Name))}).");
                continue;
            }

            var path = ResolveFile(p, where, directory, file);
            var array = path is null ? null : ReadNpy(p, where, path);
            if (array is null)
            {
                continue;
            }

            files[inputName] = path!;
            var perSample = maxBatch > 0 ? spec.Shape.Skip(1).ToArray() : spec.Shape.ToArray();
            if (array.DataType != spec.DataType || array.Shape.Count != perSample.Length + 1 || !Shapes.Accepts(perSample, array.Shape.Skip(1).ToArray()))
            {
                p.Add(where, $"holds {array.DataType.ToWireName()} {Shapes.Format(array.Shape)}; expected {spec.DataType.ToWireName()} [samples, {string.Join(", ", perSample)}].");
            }

            samples ??= array.Shape.Count > 0 ? array.Shape[0] : 0;
            if (array.Shape.Count > 0 && array.Shape[0] != samples)
            {
                p.Add(where, $"has {array.Shape[0]} samples; other evaluation inputs have {samples}.");
            }
        }

        foreach (var missing in inputs.Where(i => doc.Inputs?.ContainsKey(i.Name) != true))
        {
            p.Add("evaluation.inputs", $"has no file for input '{missing.Name}'.");
        }

        string? labelsPath = null;
        if (doc.Labels is null)
        {
            p.Add("evaluation.labels", "is required: a .npy file of integer class indices, one per sample.");
        }
        else
        {
            labelsPath = ResolveFile(p, "evaluation.labels", directory, doc.Labels);
            var labels = labelsPath is null ? null : ReadNpy(p, "evaluation.labels", labelsPath);
            if (labels is not null)
            {
                if (labels.Shape.Count != 1 || labels.DataType is not (DataType.Int64 or DataType.Int32))
                {
                    p.Add("evaluation.labels", $"holds {labels.DataType.ToWireName()} {Shapes.Format(labels.Shape)}; expected INT64 or INT32 [samples].");
                }
                else if (samples is not null && labels.Shape[0] != samples)
                {
                    p.Add("evaluation.labels", $"has {labels.Shape[0]} labels for {samples} samples.");
                }
            }
        }

        return labelsPath is null ? null : new EvaluationSetDefinition(files, labelsPath, samples ?? 0);
    }

    private List<VariantDefinition> ReadVariants(Problems p, string directory, List<VariantDocument>? docs, List<TensorSpec> inputs, List<TensorSpec> outputs, int maxBatch)
    {
        var variants = new List<VariantDefinition>();
        if (docs is null || docs.Count == 0)
        {
            p.Add("variants", "needs at least one variant.");
            return variants;
        }

        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < docs.Count; i++)
        {
            var d = docs[i];
            var where = $"variants[{i}]" + (d.Name is null ? "" : $" ({d.Name})");
            var count = p.Count;
            if (string.IsNullOrWhiteSpace(d.Name))
            {
                p.Add(where + ".name", "is required.");
            }
            else
            {
                CheckIdentifier(p, where + ".name", d.Name);
                if (!seen.Add(d.Name))
                {
                    p.Add(where + ".name", $"'{d.Name}' is used by two variants.");
                }
            }

            if (!VariantNames.TryParseKind(d.Kind, out var kind))
            {
                p.Add(where + ".kind", $"'{d.Kind}' is not a variant kind; use fp32, int8, fp16 or early-exit.");

                // The kind decides how the files are read, but a missing or escaping file is worth saying now.
                foreach (var file in (d.Stages ?? []).Select(s => s.File).Append(d.File).OfType<string>())
                {
                    ResolveFile(p, where + ".file", directory, file);
                }
            }

            var provider = ExecutionProvider.Cpu;
            if (d.Provider is not null && !VariantNames.TryParseProvider(d.Provider, out provider))
            {
                p.Add(where + ".provider", $"'{d.Provider}' is not an execution provider; use cpu, cuda or tensorrt.");
            }

            var stages = new List<StageDefinition>();
            var threshold = d.ExitThreshold ?? DefaultExitThreshold;
            if (p.Count == count && kind == VariantKind.EarlyExit)
            {
                stages = ReadEarlyExit(p, where, directory, d, inputs, outputs, maxBatch);
                if (threshold is < 0 or > 1 || double.IsNaN(threshold))
                {
                    p.Add(where + ".exit_threshold", $"is {threshold.ToString(CultureInfo.InvariantCulture)}; it must lie in [0, 1] (1 runs every stage).");
                }
            }
            else if (p.Count == count)
            {
                if (d.Stages is not null)
                {
                    p.Add(where + ".stages", $"belongs to early-exit variants; a {d.Kind} variant names one file.");
                }

                if (d.ExitThreshold is not null)
                {
                    p.Add(where + ".exit_threshold", "belongs to early-exit variants.");
                }

                if (d.File is null)
                {
                    p.Add(where + ".file", "is required.");
                }
                else
                {
                    var path = ResolveFile(p, where + ".file", directory, d.File);
                    var graph = path is null ? null : ReadGraph(p, where + ".file", path);
                    if (graph is not null)
                    {
                        CheckInputs(p, where + ".file", graph, inputs);
                        foreach (var output in outputs)
                        {
                            CheckTensor(p, where + ".file", "output", graph.Outputs, output);
                        }

                        stages.Add(new StageDefinition(path!, d.File, null));
                    }
                }
            }

            if (p.Count == count)
            {
                variants.Add(new VariantDefinition(d.Name!, kind, provider, stages, kind == VariantKind.EarlyExit ? threshold : 1.0, ReadProfile(d.Profile)));
            }
        }

        return variants;
    }

    private List<StageDefinition> ReadEarlyExit(Problems p, string where, string directory, VariantDocument d, List<TensorSpec> inputs, List<TensorSpec> outputs, int maxBatch)
    {
        var stages = new List<StageDefinition>();
        if (d.File is not null)
        {
            p.Add(where + ".file", "does not belong to an early-exit variant; list its stages instead.");
        }

        if (d.Stages is null || d.Stages.Count < 2)
        {
            p.Add(where + ".stages", "needs at least two stages, each with a file and an exit output.");
            return stages;
        }

        if (outputs.Count != 1)
        {
            p.Add(where, $"early exit needs a model with exactly one output; this model has {outputs.Count}.");
            return stages;
        }

        if (maxBatch <= 0)
        {
            p.Add(where, "early exit needs a batch dimension (max_batch_size > 0) so that samples can leave the batch.");
            return stages;
        }

        GraphSignature? previous = null;
        for (var k = 0; k < d.Stages.Count; k++)
        {
            var stage = d.Stages[k];
            var at = $"{where}.stages[{k}]";
            if (stage.File is null)
            {
                p.Add(at + ".file", "is required.");
                previous = null;
                continue;
            }

            if (string.IsNullOrWhiteSpace(stage.Exit))
            {
                p.Add(at + ".exit", "is required: the stage output holding the exit head's logits.");
            }

            var path = ResolveFile(p, at + ".file", directory, stage.File);
            var graph = path is null ? null : ReadGraph(p, at + ".file", path);
            if (graph is null)
            {
                previous = null;
                continue;
            }

            if (k == 0)
            {
                CheckInputs(p, at + ".file", graph, inputs);
            }
            else if (previous is not null)
            {
                foreach (var input in graph.Inputs)
                {
                    var fed = previous.Outputs.FirstOrDefault(o => o.Name == input.Name);
                    if (fed is null)
                    {
                        p.Add(at + ".file", $"input '{input.Name}' is not an output of the stage before it, stages[{k - 1}] (its outputs: {Join(previous.Outputs.Select(o => o.Name))}).");
                    }
                    else if (fed.DataType != input.DataType || !ShapesAgree(fed.Shape, input.Shape))
                    {
                        p.Add(at + ".file", $"input {input} does not match output {fed} of the stage before it (stages[{k - 1}]).");
                    }
                }
            }

            if (!string.IsNullOrWhiteSpace(stage.Exit))
            {
                var exit = graph.Outputs.FirstOrDefault(o => o.Name == stage.Exit);
                if (exit is null)
                {
                    p.Add(at + ".exit", $"'{stage.Exit}' is not an output of {stage.File} (its outputs: {Join(graph.Outputs.Select(o => o.Name))}).");
                }
                else if (exit.DataType != DataType.Fp32)
                {
                    p.Add(at + ".exit", $"'{stage.Exit}' is {exit.DataType.ToWireName()}; exit logits must be FP32.");
                }
                else
                {
                    CheckShape(p, at + ".exit", $"exit '{exit.Name}'", outputs[0].Shape, exit.Shape);
                }
            }

            foreach (var tensor in graph.Inputs.Concat(graph.Outputs))
            {
                if (tensor.Shape.Count == 0 || tensor.Shape[0] != -1)
                {
                    p.Add(at + ".file", $"tensor {tensor} has no variable batch dimension first; early-exit stages need one.");
                }
            }

            stages.Add(new StageDefinition(path!, stage.File, stage.Exit));
            previous = graph;
        }

        return stages;
    }

    private static void CheckInputs(Problems p, string where, GraphSignature graph, List<TensorSpec> inputs)
    {
        foreach (var input in inputs)
        {
            CheckTensor(p, where, "input", graph.Inputs, input);
        }

        foreach (var extra in graph.Inputs.Where(g => inputs.All(i => i.Name != g.Name)))
        {
            p.Add(where, $"graph input {extra} is not declared in the manifest's inputs.");
        }
    }

    private static void CheckTensor(Problems p, string where, string role, IReadOnlyList<TensorSpec> graphTensors, TensorSpec declared)
    {
        var actual = graphTensors.FirstOrDefault(t => t.Name == declared.Name);
        if (actual is null)
        {
            p.Add(where, $"the graph has no {role} '{declared.Name}' (graph {role}s: {Join(graphTensors.Select(t => t.Name))}).");
            return;
        }

        if (actual.DataType != declared.DataType)
        {
            p.Add(where, $"{role} '{declared.Name}' is {actual.DataType.ToWireName()} in the graph but {declared.DataType.ToWireName()} in the manifest.");
        }

        CheckShape(p, where, $"{role} '{declared.Name}'", declared.Shape, actual.Shape);
    }

    private static void CheckShape(Problems p, string where, string what, IReadOnlyList<long> declared, IReadOnlyList<long> graph)
    {
        if (declared.Count != graph.Count)
        {
            p.Add(where, $"{what} has shape {Shapes.Format(graph)} in the graph but {Shapes.Format(declared)} in the manifest (rank {graph.Count} vs {declared.Count}).");
            return;
        }

        for (var i = 0; i < declared.Count; i++)
        {
            if (graph[i] >= 0 && declared[i] != graph[i])
            {
                p.Add(where, $"{what} has shape {Shapes.Format(graph)} in the graph but {Shapes.Format(declared)} in the manifest (dimension {i}).");
                return;
            }
        }
    }

    /// <summary>Same rank, and equal wherever both fix a dimension.</summary>
    private static bool ShapesAgree(IReadOnlyList<long> a, IReadOnlyList<long> b) =>
        a.Count == b.Count && a.Zip(b).All(d => d.First < 0 || d.Second < 0 || d.First == d.Second);

    private GraphSignature? ReadGraph(Problems p, string where, string path)
    {
        try
        {
            return _graphs.Read(path);
        }
        catch (InvalidDataException e)
        {
            p.Add(where, $"cannot be read as an ONNX model: {e.Message}");
            return null;
        }
    }

    private static NpyArray? ReadNpy(Problems p, string where, string path)
    {
        try
        {
            return NpyArray.Read(path);
        }
        catch (FormatException e)
        {
            p.Add(where, e.Message);
            return null;
        }
    }

    /// <summary>Resolves a manifest path; it must be relative, stay inside the model's folder, and exist.</summary>
    private static string? ResolveFile(Problems p, string where, string directory, string relative)
    {
        if (string.IsNullOrWhiteSpace(relative) || Path.IsPathRooted(relative))
        {
            p.Add(where, $"'{relative}' must be a path relative to the model's folder.");
            return null;
        }

        var full = Path.GetFullPath(Path.Combine(directory, relative));
        if (!IsInside(directory, full))
        {
            p.Add(where, $"'{relative}' points outside the model's folder.");
            return null;
        }

        if (!File.Exists(full))
        {
            p.Add(where, $"'{relative}' does not exist.");
            return null;
        }

        // The file, and every folder between it and the model's folder, may be a link: none may lead outside.
        for (var path = full; path.Length > directory.Length; path = Path.GetDirectoryName(path)!)
        {
            FileSystemInfo entry = path == full ? new FileInfo(path) : new DirectoryInfo(path);
            var target = entry.LinkTarget is null ? null : entry.ResolveLinkTarget(returnFinalTarget: true);
            if (target is not null && !IsInside(directory, Path.GetFullPath(target.FullName)))
            {
                p.Add(where, $"'{relative}' leads through the link '{path}' to '{target.FullName}', outside the model's folder.");
                return null;
            }
        }

        return full;
    }

    private static bool IsInside(string directory, string path) =>
        path.StartsWith(Path.TrimEndingDirectorySeparator(directory) + Path.DirectorySeparatorChar, StringComparison.Ordinal);

    private static void CheckIdentifier(Problems p, string where, string value)
    {
        if (value.Length == 0 || value.Length > 128 || !value.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.') || value.StartsWith('.'))
        {
            p.Add(where, $"'{value}' may use only letters, digits, '-', '_' and '.', and may not start with '.'.");
        }
    }

    private static VariantProfile? ReadProfile(ProfileDocument? d) => d is null
        ? null
        : new VariantProfile(
            d.MeasuredAt,
            d.Machine,
            d.Accuracy,
            (d.Latency ?? []).Select(l => new LatencyPoint(l.BatchSize, l.P50Ms, l.P95Ms, l.ItemsPerSecond)).ToList(),
            (d.Thresholds ?? []).Select(t => new ThresholdPoint(t.Threshold, t.Accuracy, t.MeanStages, t.MeanLatencyMs)).ToList());

    /// <summary>A content hash over everything that can change an answer: the manifest, the labels and every model file.</summary>
    private static string ComputeRevision(string manifestPath, IEnumerable<VariantDefinition> variants, string? labelsPath)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var files = new List<string> { manifestPath };
        if (labelsPath is not null)
        {
            files.Add(labelsPath);
        }

        files.AddRange(variants.SelectMany(v => v.Stages).Select(s => s.Path).Distinct(StringComparer.Ordinal));
        var buffer = new byte[81920];
        foreach (var file in files)
        {
            using var stream = File.OpenRead(file);
            int read;
            while ((read = stream.Read(buffer)) > 0)
            {
                hash.AppendData(buffer, 0, read);
            }
        }

        return Convert.ToHexStringLower(hash.GetHashAndReset())[..16];
    }

    private static string Join(IEnumerable<string?> names)
    {
        var list = names.Where(n => n is not null).ToList();
        return list.Count == 0 ? "none" : string.Join(", ", list);
    }

    /// <summary>Collects problems prefixed with the manifest path and the key they concern.</summary>
    private sealed class Problems(string manifestPath, List<string> sink)
    {
        public int Count => sink.Count;

        public void Add(string key, string message) =>
            sink.Add(key.Length == 0 ? $"{manifestPath}: {message}" : $"{manifestPath}: {key}: {message}");
    }
}
