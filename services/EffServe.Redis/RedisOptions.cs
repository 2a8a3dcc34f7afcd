namespace EffServe.Redis;

/// <summary>
/// How EffServe talks to Redis (section <c>EffServe:Redis</c>). The connection string itself is
/// <c>ConnectionStrings:redis</c> (StackExchange.Redis syntax: <c>host:port,password=...,ssl=true</c>).
/// </summary>
public sealed class RedisOptions
{
    public const string SectionName = "EffServe:Redis";

    /// <summary>Longest wait for any one Redis call before it counts as a failure.</summary>
    public int OperationTimeoutMs { get; set; } = 250;

    /// <summary>Longest wait for the first connection.</summary>
    public int ConnectTimeoutMs { get; set; } = 2000;

    /// <summary>Failures in a row that open the circuit breaker.</summary>
    public int BreakerFailures { get; set; } = 3;

    /// <summary>How long an open breaker refuses calls before one probe may try again.</summary>
    public double BreakerOpenSeconds { get; set; } = 2;

    /// <summary>Milliseconds between reconnection attempts after the connection dropped.</summary>
    public int ReconnectIntervalMs { get; set; } = 500;

    /// <summary>Every problem, each with the setting's path; empty when the settings are usable.</summary>
    public IReadOnlyList<string> Validate()
    {
        var problems = new List<string>();
        if (OperationTimeoutMs is < 1 or > 60_000)
        {
            problems.Add($"{SectionName}:OperationTimeoutMs is {OperationTimeoutMs}; use 1 to 60000.");
        }

        if (ConnectTimeoutMs is < 1 or > 60_000)
        {
            problems.Add($"{SectionName}:ConnectTimeoutMs is {ConnectTimeoutMs}; use 1 to 60000.");
        }

        if (BreakerFailures < 1)
        {
            problems.Add($"{SectionName}:BreakerFailures is {BreakerFailures}; at least 1.");
        }

        if (!(BreakerOpenSeconds > 0))
        {
            problems.Add($"{SectionName}:BreakerOpenSeconds is {BreakerOpenSeconds}; it must be positive.");
        }

        if (ReconnectIntervalMs < 1)
        {
            problems.Add($"{SectionName}:ReconnectIntervalMs is {ReconnectIntervalMs}; at least 1.");
        }

        return problems;
    }
}
