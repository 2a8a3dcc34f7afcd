using EffServe.Core.Tensors;
using EffServe.Zoo.Data;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace EffServe.Zoo.Onnx;

/// <summary>Opens ONNX Runtime sessions for the tools and runs them over sample sets in batches.</summary>
public static class OrtRunner
{
    /// <summary>Samples per run when the model has a batch dimension.</summary>
    public const int DefaultBatchSize = 32;

    /// <summary>
    /// Opens a CPU session on a serialised model. <paramref name="optimizedModelPath"/>, when set,
    /// receives the graph as ONNX Runtime rewrote it.
    /// </summary>
    /// <exception cref="ZooToolException">ONNX Runtime refuses the model (InvalidModel).</exception>
    public static InferenceSession Open(byte[] model, GraphOptimizationLevel level = GraphOptimizationLevel.ORT_ENABLE_ALL, int threads = 0, string? optimizedModelPath = null)
    {
        using var options = new SessionOptions
        {
            GraphOptimizationLevel = level,
            IntraOpNumThreads = threads,
            InterOpNumThreads = 1,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_FATAL,
        };
        if (optimizedModelPath is not null)
        {
            options.OptimizedModelFilePath = optimizedModelPath;
        }

        try
        {
            return new InferenceSession(model, options);
        }
        catch (OnnxRuntimeException e)
        {
            throw new ZooToolException(ZooToolError.InvalidModel, "ONNX Runtime cannot load the model: " + FirstLine(e.Message), e);
        }
    }

    /// <summary>
    /// Runs <paramref name="session"/> over every sample, <paramref name="batchSize"/> at a time
    /// (one at a time when the model has no batch dimension), and hands each batch's outputs, in
    /// the order of <paramref name="outputs"/>, to <paramref name="consume"/> with the index of
    /// the batch's first sample.
    /// </summary>
    public static void Run(
        InferenceSession session,
        SampleSet samples,
        bool hasBatchDimension,
        IReadOnlyList<string> outputs,
        Action<int, int, IReadOnlyList<OrtValue>> consume,
        int batchSize = DefaultBatchSize,
        IProgressStep? progress = null,
        CancellationToken cancellationToken = default)
    {
        var step = hasBatchDimension ? Math.Max(1, batchSize) : 1;
        var names = samples.Inputs.Keys.ToList();
        using var runOptions = new RunOptions();
        for (var start = 0; start < samples.Count; start += step)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var count = Math.Min(step, samples.Count - start);
            var values = new List<OrtValue>(names.Count);
            try
            {
                foreach (var name in names)
                {
                    values.Add(CreateBatch(samples, name, start, count, hasBatchDimension));
                }

                using var results = RunChecked(session, runOptions, names, values, outputs);
                consume(start, count, results);
            }
            finally
            {
                foreach (var value in values)
                {
                    value.Dispose();
                }
            }

            progress?.Advance(count);
        }
    }

    /// <summary>Runs once on ready-made values, with ONNX Runtime's errors as InvalidModel.</summary>
    public static IDisposableReadOnlyCollection<OrtValue> RunChecked(InferenceSession session, RunOptions runOptions, IReadOnlyCollection<string> inputNames, IReadOnlyCollection<OrtValue> inputs, IReadOnlyCollection<string> outputs)
    {
        try
        {
            return session.Run(runOptions, inputNames, inputs, outputs);
        }
        catch (OnnxRuntimeException e)
        {
            throw new ZooToolException(ZooToolError.InvalidModel, "ONNX Runtime failed to run the model: " + FirstLine(e.Message), e);
        }
    }

    /// <summary>Samples [start, start + count) of one input as a tensor of its own datatype.</summary>
    public static OrtValue CreateBatch(SampleSet samples, string input, int start, int count, bool hasBatchDimension)
    {
        var array = samples.Inputs[input];
        var rowShape = array.Shape.Skip(1);
        long[] shape = hasBatchDimension ? [count, .. rowShape] : [.. rowShape];
        var value = OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, ToElementType(array.DataType), shape);
        samples.Rows(input, start, count).CopyTo(value.GetTensorMutableRawData());
        return value;
    }

    /// <summary>ONNX Runtime's element type for a protocol datatype (its numbers are ONNX's).</summary>
    public static TensorElementType ToElementType(DataType type) => (TensorElementType)ElementTypes.FromDataType(type);

    public static string FirstLine(string message)
    {
        var end = message.IndexOf('\n', StringComparison.Ordinal);
        return (end < 0 ? message : message[..end]).Trim();
    }
}
