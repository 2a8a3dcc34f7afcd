using EffServe.Zoo.Onnx;

namespace EffServe.Zoo.Data;

/// <summary>How a converted variant's output compares with the reference's on the same samples.</summary>
/// <param name="Output">The output compared.</param>
/// <param name="Samples">How many samples.</param>
/// <param name="Source">Where the samples came from (evaluation set, file, random).</param>
/// <param name="ReferenceAccuracy">Top-1 accuracy of the reference, when labels are known.</param>
/// <param name="CandidateAccuracy">Top-1 accuracy of the converted variant, when labels are known.</param>
/// <param name="TopClassAgreement">Share of samples on which both pick the same top class.</param>
/// <param name="MaxAbsDifference">Largest absolute difference of any output element.</param>
/// <param name="MaxAbsReference">Largest magnitude of the reference's output, to judge the difference by.</param>
public sealed record OutputComparison(
    string Output,
    int Samples,
    string Source,
    double? ReferenceAccuracy,
    double? CandidateAccuracy,
    double TopClassAgreement,
    double MaxAbsDifference,
    double MaxAbsReference)
{
    /// <summary>Candidate minus reference accuracy, in percentage points.</summary>
    public double? AccuracyDeltaPoints => CandidateAccuracy - ReferenceAccuracy is { } d ? d * 100 : null;

    /// <summary>Runs both models over the samples and compares <paramref name="output"/>.</summary>
    public static OutputComparison Measure(
        OnnxModel reference,
        OnnxModel candidate,
        SampleSet samples,
        bool hasBatchDimension,
        string output,
        IReadOnlyList<long>? labels,
        string source,
        IToolProgress progress,
        CancellationToken cancellationToken = default)
    {
        ModelOutputs Run(OnnxModel model, string what)
        {
            using var session = OrtRunner.Open(model.ToBytes());
            using var step = progress.Start($"Comparing: {what}", samples.Count);
            return ModelOutputs.Collect(session, samples, hasBatchDimension, [output], step, cancellationToken);
        }

        var a = Run(reference, "reference");
        var b = Run(candidate, "converted");
        return new OutputComparison(
            output,
            samples.Count,
            source,
            labels is null ? null : a.Accuracy(output, labels),
            labels is null ? null : b.Accuracy(output, labels),
            a.TopClassAgreement(b, output),
            a.MaxAbsDifference(b, output),
            a.MaxAbsValue(output));
    }
}
