namespace EffServe.Redis;

/// <summary>Redis could not answer: not configured, the breaker is open, or the call failed or timed out.</summary>
public sealed class RedisUnavailableException : Exception
{
    public RedisUnavailableException()
    {
    }

    public RedisUnavailableException(string message)
        : base(message)
    {
    }

    public RedisUnavailableException(string message, Exception inner)
        : base(message, inner)
    {
    }
}
