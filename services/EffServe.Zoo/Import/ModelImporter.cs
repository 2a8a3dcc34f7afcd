using EffServe.Core.Tensors;
using EffServe.Core.Zoo;
using EffServe.Zoo.Data;
using EffServe.Zoo.Manifest;
using EffServe.Zoo.Onnx;
using Microsoft.ML.OnnxRuntime;

namespace EffServe.Zoo.Import;

/// <summary>What <c>effserve zoo import</c> was asked to do.</summary>
public sealed record ImportRequest(string ModelPath, string Zoo)
{
    /// <summary>The model's name in the zoo; the file's name when null.</summary>
    public string? Name { get; init; }

    /// <summary>A text file of class labels, one per line.</summary>
    public string? LabelsFile { get; init; }

    /// <summary>Model input → .npy file of evaluation samples for it.</summary>
    public IReadOnlyDictionary<string, string> EvaluationInputs { get; init; } = new Dictionary<string, string>();

    /// <summary>.npy file of class indices, one per evaluation sample.</summary>
    public string? EvaluationLabels { get; init; }

    /// <summary>0 for no batch dimension; null to decide from the graph (64 when every input and output's first dimension is variable).</summary>
    public int? MaxBatchSize { get; init; }

    /// <summary>The graph outputs the manifest declares, in order; every output when null.</summary>
    public IReadOnlyList<string>? Outputs { get; init; }

    public string Task { get; init; } = "classification";

    public string? Description { get; init; }

    /// <summary>Replace a model of the same name.</summary>
    public bool Replace { get; init; }

    /// <summary>
    /// With <see cref="Replace"/>: replace the model even though it has variants besides fp32 (built
    /// from the graph being replaced), which are dropped. Without it such a replacement is refused.
    /// </summary>
    public bool DropVariants { get; init; }
}

/// <summary>What the import made.</summary>
public sealed record ImportResult(ModelDefinition Model, string ModelFile, int? EvaluationSamples)
{
    /// <summary>Variants of the replaced model that are gone (with --force --drop-variants).</summary>
    public IReadOnlyList<string> DroppedVariants { get; init; } = [];
}

/// <summary>
/// Brings an FP32 ONNX model into a zoo: a model folder with a manifest whose inputs and outputs
/// come from the graph (symbolic dimensions as -1), one fp32 variant, and optionally labels and an
/// evaluation set. The result is loaded with the server's loader before it appears in the zoo.
/// </summary>
public static class ModelImporter
{
    public const int DefaultMaxBatchSize = 64;

    public static ImportResult Import(ImportRequest request, IToolProgress progress)
    {
        using var step = progress.Start("Importing", 3);
        var model = OnnxModel.Load(request.ModelPath);
        using (OrtRunner.Open(model.ToBytes(), GraphOptimizationLevel.ORT_DISABLE_ALL, threads: 1))
        {
            // ONNX Runtime accepts it: shapes, types and operators are consistent.
        }

        step.Advance(1);
        var name = request.Name ?? ZooNames.FromFileName(request.ModelPath);
        ZooNames.Check(name, "model name");
        var dropped = VariantsReplacing(request, name);
        var inputs = model.InputSpecs();
        var allOutputs = model.OutputSpecs();
        var outputs = allOutputs;
        if (request.Outputs is { Count: > 0 } wanted)
        {
            outputs = wanted.Select(w => allOutputs.FirstOrDefault(o => o.Name == w)
                ?? throw new ZooToolException(ZooToolError.UnknownName, $"'{w}' is not an output of the model (outputs: {string.Join(", ", allOutputs.Select(o => o.Name))}).")).ToList();
        }

        var maxBatch = DecideBatch(request.MaxBatchSize, inputs, outputs);
        if (maxBatch > 0)
        {
            inputs = inputs.Select(i => i with { Shape = [-1, .. i.Shape.Skip(1)] }).ToList();
            outputs = outputs.Select(o => o with { Shape = [-1, .. o.Shape.Skip(1)] }).ToList();
        }

        foreach (var input in request.EvaluationInputs.Keys.Where(k => inputs.All(i => i.Name != k)))
        {
            throw new ZooToolException(ZooToolError.UnknownName, $"--eval-inputs names '{input}', which is not an input of the model (inputs: {string.Join(", ", inputs.Select(i => i.Name))}).");
        }

        var hasEvaluation = request.EvaluationInputs.Count > 0;
        if (hasEvaluation != (request.EvaluationLabels is not null))
        {
            throw new ZooToolException(ZooToolError.InvalidArgument, "an evaluation set needs both --eval-inputs (one name=file.npy per input) and --eval-labels.");
        }

        int? samples = null;
        if (hasEvaluation)
        {
            var set = new SampleSet(request.EvaluationInputs.ToDictionary(kv => kv.Key, kv => SampleSet.ReadNpy(kv.Value), StringComparer.Ordinal));
            set.CheckFits(inputs, maxBatch > 0, "the evaluation set");
            var labels = SampleSet.ReadLabels(request.EvaluationLabels!);
            if (labels.Length != set.Count)
            {
                throw new ZooToolException(ZooToolError.InvalidData, $"--eval-labels has {labels.Length} labels for {set.Count} evaluation samples.");
            }

            samples = set.Count;
        }

        if (request.LabelsFile is not null && !File.Exists(request.LabelsFile))
        {
            throw new ZooToolException(ZooToolError.NotFound, $"{Path.GetFullPath(request.LabelsFile)} does not exist.");
        }

        step.Advance(1);
        var relativeModel = $"fp32/{name}.onnx";
        var definition = ZooWriter.CreateModel(request.Zoo, name, request.Replace, folder =>
        {
            var target = Path.Combine(folder, relativeModel);
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            if (model.HadExternalData)
            {
                model.Save(target);
            }
            else
            {
                File.Copy(request.ModelPath, target);
            }

            Dictionary<string, string>? evaluation = null;
            string? labelsPath = null;
            if (hasEvaluation)
            {
                Directory.CreateDirectory(Path.Combine(folder, "eval"));
                evaluation = new Dictionary<string, string>(StringComparer.Ordinal);
                foreach (var (input, file) in request.EvaluationInputs)
                {
                    var relative = $"eval/{ZooNames.FromFileName(input)}.npy";
                    File.Copy(file, Path.Combine(folder, relative), overwrite: true);
                    evaluation[input] = relative;
                }

                labelsPath = "eval/labels.npy";
                File.Copy(request.EvaluationLabels!, Path.Combine(folder, labelsPath));
            }

            if (request.LabelsFile is not null)
            {
                File.Copy(request.LabelsFile, Path.Combine(folder, "labels.txt"));
            }

            var manifest = new ManifestContent(
                name,
                request.Task,
                request.Description ?? $"Imported from {Path.GetFileName(request.ModelPath)}.",
                maxBatch,
                inputs,
                outputs,
                request.LabelsFile is null ? null : "labels.txt",
                evaluation,
                labelsPath,
                [new VariantEntry("fp32", "fp32", "cpu", relativeModel, null, null, null)],
                $"{name}: imported by `effserve zoo import`.");
            File.WriteAllText(Path.Combine(folder, ZooLoader.ManifestFileName), ManifestText.Create(manifest));
        });
        step.Advance(1);
        return new ImportResult(definition, Path.Combine(definition.Directory, relativeModel), samples) { DroppedVariants = dropped };
    }

    /// <summary>
    /// The variants besides fp32 of the model an import with --force replaces. They were built from
    /// the graph being replaced, so they cannot simply be kept; unless the request says to drop them,
    /// the import is refused, naming them.
    /// </summary>
    private static List<string> VariantsReplacing(ImportRequest request, string name)
    {
        var folder = Path.Combine(Path.GetFullPath(request.Zoo), name);
        if (!request.Replace || !File.Exists(Path.Combine(folder, ZooLoader.ManifestFileName)))
        {
            return [];
        }

        ModelDefinition existing;
        try
        {
            existing = ZooModel.Load(folder);
        }
        catch (ZooValidationException)
        {
            return []; // a model that does not load serves nothing; replacing it loses nothing that works
        }

        var others = existing.Variants.Select(v => v.Name).Where(v => v != "fp32").ToList();
        if (others.Count > 0 && !request.DropVariants)
        {
            throw new ZooToolException(
                ZooToolError.AlreadyExists,
                $"{folder} has variants {string.Join(", ", others)} besides fp32, built from the graph being replaced; --force would drop them. " +
                "Pass --drop-variants as well to replace the model without them, or import under another --name.");
        }

        return others;
    }

    /// <summary>The batch size limit: as asked (checked against the graph), else 64 when every tensor's first dimension varies.</summary>
    private static int DecideBatch(int? asked, IReadOnlyList<TensorSpec> inputs, IReadOnlyList<TensorSpec> outputs)
    {
        var all = inputs.Concat(outputs).ToList();
        var variable = all.All(t => t.Shape.Count > 0 && t.Shape[0] < 0);
        if (asked is null)
        {
            return variable ? DefaultMaxBatchSize : 0;
        }

        if (asked < 0)
        {
            throw new ZooToolException(ZooToolError.InvalidArgument, $"--max-batch-size is {asked}; use 0 (no batch dimension) or a positive limit.");
        }

        if (asked > 0 && !variable)
        {
            var fixedOne = all.First(t => t.Shape.Count == 0 || t.Shape[0] >= 0);
            throw new ZooToolException(ZooToolError.InvalidArgument, $"--max-batch-size {asked} needs a variable first dimension on every input and output, but {fixedOne} fixes it; use --max-batch-size 0.");
        }

        return asked.Value;
    }
}
