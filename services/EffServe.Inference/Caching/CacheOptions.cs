namespace EffServe.Inference.Caching;

/// <summary>
/// The response cache (section <c>EffServe:Cache</c>). Caching is opt-in per model:
/// <c>EffServe:Cache:Models:&lt;model&gt;:Enabled=true</c>, with an optional
/// <c>TtlSeconds</c>. The second level is Redis when <c>ConnectionStrings:redis</c> is set.
/// </summary>
public sealed class CacheOptions
{
    public const string SectionName = "EffServe:Cache";

    /// <summary>Bytes the in-process level may hold (answers, serialized); least recently used leave first.</summary>
    public long L1MaxBytes { get; set; } = 64L * 1024 * 1024;

    /// <summary>How long an entry lives when its model sets no TtlSeconds.</summary>
    public int DefaultTtlSeconds { get; set; } = 300;

    /// <summary>How long an entry lives in the in-process level at most (it may be shorter than in Redis, so replicas converge).</summary>
    public int L1MaxTtlSeconds { get; set; } = 60;

    public Dictionary<string, ModelCacheOptions> Models { get; set; } = new(StringComparer.Ordinal);

    public bool IsEnabled(string model) => Models.TryGetValue(model, out var m) && m.Enabled;

    public TimeSpan TtlOf(string model) =>
        TimeSpan.FromSeconds(Models.TryGetValue(model, out var m) && m.TtlSeconds is { } ttl ? ttl : DefaultTtlSeconds);

    public IReadOnlyList<string> Validate()
    {
        var problems = new List<string>();
        if (L1MaxBytes < 0)
        {
            problems.Add($"{SectionName}:L1MaxBytes is {L1MaxBytes}; use 0 (no in-process level) or more.");
        }

        if (DefaultTtlSeconds < 1)
        {
            problems.Add($"{SectionName}:DefaultTtlSeconds is {DefaultTtlSeconds}; at least 1.");
        }

        if (L1MaxTtlSeconds < 1)
        {
            problems.Add($"{SectionName}:L1MaxTtlSeconds is {L1MaxTtlSeconds}; at least 1.");
        }

        foreach (var (name, model) in Models)
        {
            if (model.TtlSeconds is < 1)
            {
                problems.Add($"{SectionName}:Models:{name}:TtlSeconds is {model.TtlSeconds}; at least 1.");
            }
        }

        return problems;
    }
}

public sealed class ModelCacheOptions
{
    public bool Enabled { get; set; }

    /// <summary>Seconds an entry lives; the cache's DefaultTtlSeconds when unset.</summary>
    public int? TtlSeconds { get; set; }
}
