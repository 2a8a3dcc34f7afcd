namespace EffServe.Onnx;

/// <summary>How ONNX Runtime sessions are built (configuration section EffServe:Onnx).</summary>
public sealed class OnnxOptions
{
    public const string SectionName = "EffServe:Onnx";

    /// <summary>Threads one run may use inside an operator. 0 lets ONNX Runtime choose (one per core).</summary>
    public int IntraOpThreads { get; set; } = 1;

    /// <summary>Threads across independent operators; 1 runs the graph sequentially.</summary>
    public int InterOpThreads { get; set; } = 1;

    /// <summary>Runs per variant at start-up before it is reported ready.</summary>
    public int WarmupRuns { get; set; } = 2;
}
