using Microsoft.Extensions.Logging;

namespace EffServe.Onnx;

internal static partial class OnnxLog
{
    [LoggerMessage(EventId = 100, Level = LogLevel.Information, Message = "Model {Model}: variant {Variant} ({Kind} on {Provider}) loaded and warm in {ElapsedMs:F0} ms")]
    public static partial void VariantLoaded(ILogger logger, string model, string variant, string kind, string provider, double elapsedMs);

    [LoggerMessage(EventId = 101, Level = LogLevel.Warning, Message = "Model {Model}: variant {Variant} skipped, {Provider} is unavailable: {Reason}")]
    public static partial void VariantSkipped(ILogger logger, string model, string variant, string provider, string reason);
}
