namespace EffServe.Inference;

internal static partial class InferenceLog
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "Loading the zoo at {ZooPath}")]
    public static partial void LoadingZoo(ILogger logger, string zooPath);

    [LoggerMessage(EventId = 2, Level = LogLevel.Information, Message = "Serving model {Model} version {Version} (revision {Revision}): variants {Variants}, default {DefaultVariant}")]
    public static partial void ModelReady(ILogger logger, string model, string version, string revision, string variants, string? defaultVariant);

    [LoggerMessage(EventId = 3, Level = LogLevel.Error, Message = "Model {Model} has no variant that can run on this machine; it is not ready")]
    public static partial void ModelNotReady(ILogger logger, string model);

    [LoggerMessage(EventId = 4, Level = LogLevel.Critical, Message = "The zoo cannot be served: {Problems}")]
    public static partial void ZooInvalid(ILogger logger, string problems);

    [LoggerMessage(EventId = 5, Level = LogLevel.Information, Message = "Runs allowed at once: {Slots} ({IntraOpThreads} intra-op threads each, {Cores} cores)")]
    public static partial void RunSlots(ILogger logger, int slots, int intraOpThreads, int cores);

    [LoggerMessage(EventId = 6, Level = LogLevel.Critical, Message = "The service's settings are invalid: {Failures}")]
    public static partial void SettingsInvalid(ILogger logger, string failures);

    [LoggerMessage(EventId = 11, Level = LogLevel.Error, Message = "Model {Model} failed a request unexpectedly")]
    public static partial void RequestFailed(ILogger logger, Exception exception, string model);

    [LoggerMessage(EventId = 10, Level = LogLevel.Error, Message = "Model {Model} variant {Variant} failed a run")]
    public static partial void RunFailed(ILogger logger, Exception exception, string model, string variant);

    [LoggerMessage(EventId = 40, Level = LogLevel.Debug, Message = "Refused a call to {Method}: the request is not a valid {MessageType}: {Reason}")]
    public static partial void MalformedRequest(ILogger logger, string method, string messageType, string reason);
}
