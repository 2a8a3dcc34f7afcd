using EffServe.Core.Tensors;
using EffServe.Zoo.Data;
using EffServe.Zoo.Onnx;

namespace EffServe.Zoo.Tests.Support;

/// <summary>The digits model and its 540-sample evaluation set, read once for the whole test run.</summary>
internal static class DigitsData
{
    private static readonly Lazy<SampleSet> s_samples = new(() =>
        new SampleSet(new Dictionary<string, NpyArray> { ["image"] = NpyArray.Read(TestPaths.DigitsImages) }));

    private static readonly Lazy<long[]> s_labels = new(() => SampleSet.ReadLabels(TestPaths.DigitsLabels));

    public static SampleSet Samples => s_samples.Value;

    public static long[] Labels => s_labels.Value;

    public static OnnxModel Model() => OnnxModel.Load(TestPaths.DigitsModel);
}
