using EffServe.Core.Zoo;
using EffServe.Zoo.Data;
using EffServe.Zoo.Manifest;
using EffServe.Zoo.Onnx;

namespace EffServe.Zoo.Quantization;

/// <summary>What <c>effserve zoo quantize</c> was asked to do.</summary>
public sealed record QuantizeRequest(string Zoo, string Model)
{
    public string From { get; init; } = "fp32";

    public string Name { get; init; } = "int8";

    /// <summary>"eval", "random", a .npy file, or input=file.npy pairs.</summary>
    public string Calibration { get; init; } = SampleSources.Evaluation;

    public CalibrationMethod Method { get; init; } = CalibrationMethod.MinMax;

    public double Percentile { get; init; } = 99.99;

    /// <summary>Calibration samples to use; all (or 32 random ones) when null.</summary>
    public int? Samples { get; init; }

    public int Seed { get; init; }

    public bool Replace { get; init; }
}

/// <summary>What quantisation made.</summary>
/// <param name="Model">The model as it now loads, with the new variant.</param>
/// <param name="File">The new variant's ONNX file.</param>
/// <param name="Summary">What the quantiser did.</param>
/// <param name="Kernels">What ONNX Runtime runs after its own rewriting.</param>
/// <param name="CalibrationSource">The samples calibration ran on.</param>
/// <param name="CalibrationSamples">How many.</param>
/// <param name="Comparison">INT8 against the source variant.</param>
public sealed record QuantizeResult(
    ModelDefinition Model,
    string File,
    QuantizationSummary Summary,
    KernelReport Kernels,
    string CalibrationSource,
    int CalibrationSamples,
    OutputComparison Comparison);

/// <summary>Adds a static INT8 (QDQ) variant to a zoo model.</summary>
public static class QuantizeTool
{
    public static QuantizeResult Run(QuantizeRequest request, IToolProgress progress, CancellationToken cancellationToken = default)
    {
        if (request.Percentile is <= 50 or > 100 || double.IsNaN(request.Percentile))
        {
            throw new ZooToolException(ZooToolError.InvalidArgument, $"--percentile is {request.Percentile}; use a value above 50 and at most 100 (99.99 keeps all but the outer 0.01% on each side).");
        }

        if (request.Samples is <= 0)
        {
            throw new ZooToolException(ZooToolError.InvalidArgument, $"--samples is {request.Samples}; use 1 or more.");
        }

        var zooModel = ZooModel.Open(request.Zoo, request.Model);
        zooModel.CheckNewVariant(request.Name, request.Replace);
        var definition = zooModel.Definition;
        var source = zooModel.SourceVariant(request.From);
        var model = OnnxModel.Load(source.Stages[0].Path);
        var calibration = SampleSources.Resolve(definition, request.Calibration, request.Samples, request.Seed, "--calibration");
        var settings = new CalibrationSettings { Method = request.Method, Percentile = request.Percentile };
        var (quantized, summary, _) = QdqQuantizer.Quantize(model, calibration.Samples, definition.HasBatchDimension, settings, progress, cancellationToken);
        var bytes = quantized.ToBytes();

        KernelReport kernels;
        using (var step = progress.Start("Checking ONNX Runtime's kernels", 1))
        {
            kernels = KernelInspector.Inspect(bytes);
            step.Advance(1);
        }

        // Compare on the evaluation set when there is one (accuracy), else on the calibration samples.
        var check = definition.Evaluation is not null ? SampleSources.Resolve(definition, SampleSources.Evaluation, null, request.Seed, "--calibration") : calibration;
        var comparison = OutputComparison.Measure(model, quantized, check.Samples, definition.HasBatchDimension, definition.Outputs[0].Name, check.Labels, check.Source, progress, cancellationToken);

        var relative = $"{request.Name}/{definition.Name}.onnx";
        var method = request.Method == CalibrationMethod.Percentile
            ? $"percentile {request.Percentile.ToString(System.Globalization.CultureInfo.InvariantCulture)}"
            : request.Method.ToString().ToLowerInvariant();
        var entry = new VariantEntry(request.Name, "int8", "cpu", relative, null, null,
            $"static INT8 (QDQ) from {request.From}, {method} calibration on {calibration.Samples.Count} samples ({calibration.Source})");
        var updated = ZooWriter.AddVariant(zooModel, entry, request.Name, request.Replace, folder => File.WriteAllBytes(Path.Combine(folder, $"{definition.Name}.onnx"), bytes));
        return new QuantizeResult(updated, Path.Combine(updated.Directory, relative), summary, kernels, calibration.Source, calibration.Samples.Count, comparison);
    }
}
