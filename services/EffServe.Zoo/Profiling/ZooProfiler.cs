using System.Globalization;
using EffServe.Core.Tensors;
using EffServe.Core.Zoo;
using EffServe.Onnx;
using EffServe.Zoo.Manifest;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace EffServe.Zoo.Profiling;

/// <summary>
/// Measures the variants of a zoo model on this machine, the way the inference service runs them
/// (<see cref="ModelRuntime"/>, same session settings), and writes the profiles into the model's
/// manifest: latency per batch size, accuracy on the evaluation set, and for early exit the
/// accuracy, mean stages and latency on a grid of thresholds.
/// </summary>
public sealed class ZooProfiler
{
    private readonly TimeProvider _time;
    private readonly ILogger _logger;

    public ZooProfiler(TimeProvider time, ILogger? logger = null)
    {
        _time = time;
        _logger = logger ?? NullLogger.Instance;
    }

    /// <summary>Profiles the model as <paramref name="request"/> says and, unless told not to, writes the profiles into its manifest.</summary>
    /// <param name="request">The model, variants, batch sizes, thresholds and measuring settings.</param>
    /// <param name="progress">Gets one step per variant measured.</param>
    /// <param name="cancellationToken">Stops measuring; the manifest is then left as it was.</param>
    /// <exception cref="ZooToolException">
    /// InvalidArgument: a value of the request is out of range (or the model name is not a name),
    /// or no variant asked for can run here. NotFound: no such zoo folder or model. UnknownName: no
    /// such variant. InvalidModel: the model's manifest does not load. VerificationFailed: the
    /// profiled manifest could not be written or did not load again; the original is in place.
    /// </exception>
    /// <exception cref="OperationCanceledException">The token was cancelled; the manifest is untouched.</exception>
    public ProfileReport Profile(ProfileRequest request, IToolProgress? progress = null, CancellationToken cancellationToken = default)
    {
        progress ??= SilentProgress.Instance;
        var problems = request.Check();
        if (problems.Count > 0)
        {
            throw new ZooToolException(ZooToolError.InvalidArgument, string.Join(" ", problems));
        }

        ZooNames.Check(request.Model, "model name");
        ModelDefinition model;
        try
        {
            model = ZooModel.Open(request.ZooDirectory, request.Model).Definition;
        }
        catch (ZooValidationException e)
        {
            throw new ZooToolException(ZooToolError.InvalidModel, e.Message, e);
        }

        var notes = new List<string>();
        var variants = SelectVariants(model, request.Variants);
        var batchSizes = ResolveBatchSizes(model, request.BatchSizes, notes);
        var thresholds = (request.Thresholds ?? ProfileRequest.DefaultThresholds).Select(ProfileNumbers.Threshold).Distinct().Order().ToList();
        var machine = MachineDescription.Detect(request.IntraOpThreads);
        var measuredAt = _time.GetUtcNow().UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

        var evaluation = model.Evaluation is { } set ? SamplePool.FromEvaluation(model, set) : null;
        var scorable = Scoring.CanScore(model.Outputs[0].DataType);
        if (evaluation is null)
        {
            notes.Add("The model has no evaluation set: latency is timed on seeded synthetic inputs, and accuracy and the early-exit threshold grid are not measured.");
        }
        else if (!scorable)
        {
            notes.Add($"Output '{model.Outputs[0].Name}' is {model.Outputs[0].DataType.ToWireName()}, and accuracy is measured on FP32 scores only: it is not measured; latency is timed on the evaluation inputs.");
        }

        var scored = scorable ? evaluation : null;
        var largest = batchSizes.Max();
        var timing = (evaluation ?? SamplePool.Synthetic(model, largest, request.Measurement.Seed)).WithAtLeast(largest);
        var options = new OnnxOptions { IntraOpThreads = request.IntraOpThreads, InterOpThreads = 1 };

        var reports = new List<VariantReport>();
        using (var runtime = ModelRuntime.Load(model with { Variants = variants }, options, _logger))
        {
            foreach (var state in runtime.Variants)
            {
                var v = state.Definition;
                if (!state.Loaded)
                {
                    reports.Add(new VariantReport(v.Name, v.Kind.ToManifestName(), v.Provider.ToManifestName(), state.SkipReason ?? "not loaded", null, [], [], []));
                    continue;
                }

                var steps = VariantMeasurement.Steps(v, batchSizes.Count, scored is not null, thresholds.Count);
                using var step = progress.Start($"{v.Name} ({v.Kind.ToManifestName()} on {v.Provider.ToManifestName()})", steps);
                var measurement = new VariantMeasurement(runtime, model, v, request.Measurement, step, cancellationToken);
                var report = measurement.Run(batchSizes, timing, scored, evaluation is null, thresholds);
                ProfileLog.VariantProfiled(_logger, model.Name, v.Name, report.Latency[0].P50Ms, report.Accuracy?.Accuracy);
                reports.Add(report);
            }
        }

        if (reports.All(r => !r.Profiled))
        {
            throw new ZooToolException(
                ZooToolError.InvalidArgument,
                "no variant asked for can run on this machine, so nothing was measured: " + string.Join("; ", reports.Select(r => $"{r.Name}: {r.SkipReason}")) + ".");
        }

        var manifest = Path.Combine(model.Directory, ZooLoader.ManifestFileName);
        if (request.WriteManifest)
        {
            var profiles = reports.Where(r => r.Profiled).ToDictionary(r => r.Name, r => r.ToProfile(measuredAt, machine.Summary), StringComparer.Ordinal);
            var written = new ManifestProfileWriter(new OnnxGraphReader(), _logger).Write(model.Directory, profiles);
            ProfileLog.ManifestWritten(_logger, manifest, profiles.Count);
            if (written.DroppedComments > 0)
            {
                notes.Add(string.Create(CultureInfo.InvariantCulture, $"{written.DroppedComments} comment(s) below the manifest's leading comment block could not be kept: the YAML editor drops them. Put lasting remarks in the leading block."));
            }
        }

        return new ProfileReport(
            model.Name,
            manifest,
            measuredAt,
            machine,
            evaluation is null ? null : evaluation.Count,
            reports,
            request.WriteManifest,
            notes);
    }

    private static List<VariantDefinition> SelectVariants(ModelDefinition model, IReadOnlyList<string> names)
    {
        if (names.Count == 0)
        {
            return [.. model.Variants];
        }

        var unknown = names.Where(n => model.FindVariant(n) is null).Distinct(StringComparer.Ordinal).ToList();
        if (unknown.Count > 0)
        {
            throw new ZooToolException(
                ZooToolError.UnknownName,
                $"model '{model.Name}' has no variant {string.Join(", ", unknown.Select(n => $"'{n}'"))} (variants: {string.Join(", ", model.Variants.Select(v => v.Name))}).");
        }

        // Manifest order, each once.
        return model.Variants.Where(v => names.Contains(v.Name, StringComparer.Ordinal)).ToList();
    }

    private static List<int> ResolveBatchSizes(ModelDefinition model, IReadOnlyList<int>? asked, List<string> notes)
    {
        if (!model.HasBatchDimension)
        {
            if (asked is not null && asked.Any(b => b != 1))
            {
                throw new ZooToolException(
                    ZooToolError.InvalidArgument,
                    $"model '{model.Name}' has no batch dimension (max_batch_size 0): every run takes one sample, so only batch size 1 can be timed.");
            }

            notes.Add("The model has no batch dimension (max_batch_size 0): each run takes one sample.");
            return [1];
        }

        if (asked is not null)
        {
            var tooLarge = asked.Where(b => b > model.MaxBatchSize).Distinct().Order().ToList();
            if (tooLarge.Count > 0)
            {
                throw new ZooToolException(
                    ZooToolError.InvalidArgument,
                    string.Create(CultureInfo.InvariantCulture, $"{(tooLarge.Count == 1 ? "batch size" : "batch sizes")} {string.Join(", ", tooLarge)} {(tooLarge.Count == 1 ? "exceeds" : "exceed")} the max_batch_size ({model.MaxBatchSize}) of model '{model.Name}'."));
            }

            return asked.Distinct().Order().ToList();
        }

        var sizes = ProfileRequest.DefaultBatchSizes.Where(b => b <= model.MaxBatchSize).ToList();
        var dropped = ProfileRequest.DefaultBatchSizes.Where(b => b > model.MaxBatchSize).ToList();
        if (dropped.Count > 0)
        {
            notes.Add(string.Create(CultureInfo.InvariantCulture, $"Batch sizes above max_batch_size {model.MaxBatchSize} are left out ({string.Join(", ", dropped)})."));
        }

        return sizes;
    }
}
