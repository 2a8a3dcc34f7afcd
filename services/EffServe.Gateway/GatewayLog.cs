namespace EffServe.Gateway;

internal static partial class GatewayLog
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "Model {Model}: replica {Replica} is {State} ({Detail})")]
    public static partial void ReplicaHealth(ILogger logger, string model, string replica, string state, string detail);

    [LoggerMessage(EventId = 2, Level = LogLevel.Warning, Message = "Model {Model}: replica {Replica} failed ({Error}): {Detail}")]
    public static partial void ReplicaFailed(ILogger logger, string model, string replica, string error, string detail);

    [LoggerMessage(EventId = 3, Level = LogLevel.Information, Message = "Model {Model}: replica {Replica} answered UNAVAILABLE; retrying on another replica")]
    public static partial void RetryingUnavailable(ILogger logger, string model, string replica);

    [LoggerMessage(EventId = 4, Level = LogLevel.Warning, Message = "Model {Model}: DNS name {Host} did not resolve: {Detail}")]
    public static partial void DnsFailed(ILogger logger, string model, string host, string detail);

    [LoggerMessage(EventId = 5, Level = LogLevel.Information, Message = "Model {Model}: replica {Replica} left the DNS answer and the rotation")]
    public static partial void ReplicaRemoved(ILogger logger, string model, string replica);

    [LoggerMessage(EventId = 6, Level = LogLevel.Critical, Message = "The gateway's settings are invalid: {Failures}")]
    public static partial void SettingsInvalid(ILogger logger, string failures);

    [LoggerMessage(EventId = 20, Level = LogLevel.Information, Message = "Model {Model}: replica {Replica} is busy: its health probe timed out ({Detail}) while it answered calls; it stays in rotation")]
    public static partial void ReplicaBusy(ILogger logger, string model, string replica, string detail);

    [LoggerMessage(EventId = 21, Level = LogLevel.Warning, Message = "Model {Model}: replica {Replica} failed a health probe ({Detail}); {Failed} in a row so far, {Threshold} take it out of rotation")]
    public static partial void ReplicaProbeFailed(ILogger logger, string model, string replica, int failed, int threshold, string detail);
}
