using EffServe.Core.Zoo;
using EffServe.Zoo.Data;
using EffServe.Zoo.Manifest;
using EffServe.Zoo.Onnx;
using Microsoft.ML.OnnxRuntime;

namespace EffServe.Zoo.Fp16;

/// <summary>What <c>effserve zoo fp16</c> was asked to do.</summary>
public sealed record Fp16Request(string Zoo, string Model)
{
    public string From { get; init; } = "fp32";

    public string Name { get; init; } = "fp16";

    /// <summary>Operators kept in FP32; <see cref="Fp16Converter.DefaultKeepFp32"/> when null.</summary>
    public IReadOnlyList<string>? KeepFp32 { get; init; }

    public ExecutionProvider Provider { get; init; } = ExecutionProvider.Cuda;

    /// <summary>Samples for the CPU check; the evaluation set (or 32 random inputs) when null.</summary>
    public int? Samples { get; init; }

    public bool Replace { get; init; }
}

/// <summary>What FP16 conversion made.</summary>
/// <param name="Model">The model as it now loads, with the new variant.</param>
/// <param name="File">The new variant's ONNX file.</param>
/// <param name="Summary">What the converter did.</param>
/// <param name="KeptFp32">The block list applied.</param>
/// <param name="CpuComparison">FP16 against the source on ONNX Runtime's CPU provider, when it runs there.</param>
/// <param name="CpuSkipReason">Why the CPU comparison did not run.</param>
public sealed record Fp16Result(
    ModelDefinition Model,
    string File,
    Fp16Summary Summary,
    IReadOnlyList<string> KeptFp32,
    OutputComparison? CpuComparison,
    string? CpuSkipReason);

/// <summary>Adds an FP16 variant (FP16 weights and compute, FP32 at the edges) to a zoo model.</summary>
public static class Fp16Tool
{
    public static Fp16Result Run(Fp16Request request, IToolProgress progress, CancellationToken cancellationToken = default)
    {
        var zooModel = ZooModel.Open(request.Zoo, request.Model);
        zooModel.CheckNewVariant(request.Name, request.Replace);
        var definition = zooModel.Definition;
        var source = zooModel.SourceVariant(request.From);
        var model = OnnxModel.Load(source.Stages[0].Path);
        var keep = request.KeepFp32 ?? Fp16Converter.DefaultKeepFp32;

        OnnxModel converted;
        Fp16Summary summary;
        using (var step = progress.Start("Converting to FP16", 1))
        {
            (converted, summary) = Fp16Converter.Convert(model, keep);
            step.Advance(1);
        }

        // ONNX Runtime's CPU provider runs FP16 graphs, computing in FP32 where it lacks FP16
        // kernels (it inserts casts), which still shows what FP16 weights and tensors cost in accuracy.
        OutputComparison? comparison = null;
        string? skipped = null;
        try
        {
            using (OrtRunner.Open(converted.ToBytes(), GraphOptimizationLevel.ORT_ENABLE_ALL, threads: 1))
            {
            }

            var samples = SampleSources.EvaluationOrRandom(definition, request.Samples, seed: 0);
            comparison = OutputComparison.Measure(model, converted, samples.Samples, definition.HasBatchDimension, definition.Outputs[0].Name, samples.Labels, samples.Source, progress, cancellationToken);
        }
        catch (ZooToolException e) when (e.Error == ZooToolError.InvalidModel)
        {
            skipped = "ONNX Runtime's CPU provider cannot run it: " + e.Message;
        }

        var relative = $"{request.Name}/{definition.Name}.onnx";
        var entry = new VariantEntry(request.Name, "fp16", request.Provider.ToManifestName(), relative, null, null,
            $"FP16 from {request.From}, FP32 inputs and outputs; kept in FP32: {DescribeKeep(keep)}");
        var bytes = converted.ToBytes();
        var updated = ZooWriter.AddVariant(zooModel, entry, request.Name, request.Replace, folder => File.WriteAllBytes(Path.Combine(folder, $"{definition.Name}.onnx"), bytes));
        return new Fp16Result(updated, Path.Combine(updated.Directory, relative), summary, keep, comparison, skipped);
    }

    private static string DescribeKeep(IReadOnlyList<string> keep) =>
        keep.Count == 0 ? "nothing"
        : keep.SequenceEqual(Fp16Converter.DefaultKeepFp32) ? "the default block list"
        : string.Join(", ", keep);
}
