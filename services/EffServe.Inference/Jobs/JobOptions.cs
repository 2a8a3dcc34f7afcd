namespace EffServe.Inference.Jobs;

/// <summary>Asynchronous jobs (section <c>EffServe:Jobs</c>); they need Redis (<c>ConnectionStrings:redis</c>).</summary>
public sealed class JobOptions
{
    public const string SectionName = "EffServe:Jobs";

    /// <summary>Whether this replica's worker takes items (the job service answers either way).</summary>
    public bool WorkerEnabled { get; set; } = true;

    /// <summary>Items one job may hold.</summary>
    public int MaxItems { get; set; } = 10_000;

    /// <summary>Serialized bytes one item may hold.</summary>
    public int MaxItemBytes { get; set; } = 4 * 1024 * 1024;

    /// <summary>Serialized bytes all of one job's items may hold together.</summary>
    public long MaxJobBytes { get; set; } = 64L * 1024 * 1024;

    /// <summary>How long a job, its inputs and its results are kept after submission.</summary>
    public int TtlSeconds { get; set; } = 86_400;

    /// <summary>Items this replica runs at once: the worker pulls more only when one finishes.</summary>
    public int MaxInFlight { get; set; } = 2;

    /// <summary>An item taken by a worker that has not acknowledged it after this long is taken over by another.</summary>
    public double VisibilityTimeoutSeconds { get; set; } = 30;

    /// <summary>Attempts before an item is dead-lettered with its last error.</summary>
    public int MaxAttempts { get; set; } = 3;

    /// <summary>Wait between polls of an empty queue (doubles up to 10× while it stays empty).</summary>
    public int PollIntervalMs { get; set; } = 50;

    public IReadOnlyList<string> Validate()
    {
        var problems = new List<string>();
        void Check(bool ok, string setting, object value, string rule)
        {
            if (!ok)
            {
                problems.Add($"{SectionName}:{setting} is {value}; {rule}.");
            }
        }

        Check(MaxItems >= 1, nameof(MaxItems), MaxItems, "at least 1");
        Check(MaxItemBytes >= 1, nameof(MaxItemBytes), MaxItemBytes, "at least 1");
        Check(MaxJobBytes >= 1, nameof(MaxJobBytes), MaxJobBytes, "at least 1");
        Check(TtlSeconds >= 1, nameof(TtlSeconds), TtlSeconds, "at least 1");
        Check(MaxInFlight >= 1, nameof(MaxInFlight), MaxInFlight, "at least 1");
        Check(VisibilityTimeoutSeconds > 0, nameof(VisibilityTimeoutSeconds), VisibilityTimeoutSeconds, "it must be positive");
        Check(MaxAttempts >= 1, nameof(MaxAttempts), MaxAttempts, "at least 1");
        Check(PollIntervalMs >= 1, nameof(PollIntervalMs), PollIntervalMs, "at least 1");
        return problems;
    }
}
