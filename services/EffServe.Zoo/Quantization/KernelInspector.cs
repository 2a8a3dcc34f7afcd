using EffServe.Zoo.Onnx;
using Microsoft.ML.OnnxRuntime;

namespace EffServe.Zoo.Quantization;

/// <summary>The operators of a graph as ONNX Runtime runs it on the CPU, after its own rewriting.</summary>
/// <param name="Operators">Operator → node count in the optimised graph.</param>
public sealed record KernelReport(IReadOnlyDictionary<string, int> Operators)
{
    /// <summary>Operators that compute on 8-bit integers.</summary>
    public static IReadOnlySet<string> IntegerOperators { get; } = new HashSet<string>(StringComparer.Ordinal)
    {
        "QLinearConv", "ConvInteger", "QGemm", "QLinearMatMul", "MatMulInteger", "MatMulIntegerToFloat",
        "DynamicQuantizeMatMul", "QLinearAdd", "QLinearMul", "QLinearAveragePool", "QLinearGlobalAveragePool",
        "QLinearConcat", "QLinearSigmoid", "QLinearLeakyRelu", "QLinearSoftmax", "QLinearReduceMean", "QLinearWhere",
    };

    /// <summary>Operators that do the heavy FP32 work (convolutions and matrix products).</summary>
    public static IReadOnlySet<string> FloatComputeOperators { get; } = new HashSet<string>(StringComparer.Ordinal)
    {
        "Conv", "FusedConv", "NchwcConv", "ConvTranspose", "Gemm", "FusedGemm", "MatMul", "FusedMatMul",
    };

    public IReadOnlyDictionary<string, int> Integer => Filter(IntegerOperators);

    public IReadOnlyDictionary<string, int> FloatCompute => Filter(FloatComputeOperators);

    public int IntegerCount => Integer.Values.Sum();

    public int FloatComputeCount => FloatCompute.Values.Sum();

    private Dictionary<string, int> Filter(IReadOnlySet<string> set) =>
        Operators.Where(kv => set.Contains(kv.Key)).ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal);
}

/// <summary>
/// Asks ONNX Runtime what it will really run: opens a CPU session at full optimisation with
/// <see cref="SessionOptions.OptimizedModelFilePath"/> set, and counts the operators of the graph
/// it saves. QDQ groups that ONNX Runtime fused show up as QLinearConv, QGemm and the like.
/// </summary>
public static class KernelInspector
{
    public static KernelReport Inspect(byte[] model)
    {
        var path = Path.Combine(Path.GetTempPath(), $"effserve-optimized-{Guid.NewGuid():N}.onnx");
        try
        {
            using (OrtRunner.Open(model, GraphOptimizationLevel.ORT_ENABLE_ALL, threads: 1, optimizedModelPath: path))
            {
            }

            var optimized = OnnxModel.Parse(File.ReadAllBytes(path), path);
            var counts = optimized.Graph.Node
                .GroupBy(n => n.OpType, StringComparer.Ordinal)
                .OrderBy(g => g.Key, StringComparer.Ordinal)
                .ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);
            return new KernelReport(counts);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
