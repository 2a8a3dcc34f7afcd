using Microsoft.Extensions.Logging;

namespace EffServe.Zoo.Profiling;

internal static partial class ProfileLog
{
    [LoggerMessage(EventId = 400, Level = LogLevel.Information, Message = "Model {Model}: variant {Variant} profiled, {P50Ms:F3} ms median at the smallest batch, accuracy {Accuracy}")]
    public static partial void VariantProfiled(ILogger logger, string model, string variant, double p50Ms, double? accuracy);

    [LoggerMessage(EventId = 401, Level = LogLevel.Information, Message = "Wrote {Count} variant profiles into {Manifest}")]
    public static partial void ManifestWritten(ILogger logger, string manifest, int count);

    [LoggerMessage(EventId = 402, Level = LogLevel.Warning, Message = "The profiled manifest {Manifest} did not reload; the original is restored: {Problem}")]
    public static partial void ManifestRestored(ILogger logger, string manifest, string problem);
}
