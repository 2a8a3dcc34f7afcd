using Microsoft.Extensions.Logging;

namespace EffServe.Redis;

internal static partial class RedisLog
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "Redis: connecting to {Endpoints}")]
    public static partial void Connecting(ILogger logger, string endpoints);

    [LoggerMessage(EventId = 2, Level = LogLevel.Warning, Message = "Redis is unavailable (circuit breaker {From} -> open): serving from the in-process cache only, job service paused; last error: {Error}")]
    public static partial void Opened(ILogger logger, string from, string error);

    [LoggerMessage(EventId = 3, Level = LogLevel.Information, Message = "Redis: circuit breaker half-open, probing")]
    public static partial void Probing(ILogger logger);

    [LoggerMessage(EventId = 4, Level = LogLevel.Information, Message = "Redis is available again (circuit breaker {From} -> closed)")]
    public static partial void Closed(ILogger logger, string from);
}
