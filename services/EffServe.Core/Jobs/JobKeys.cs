namespace EffServe.Core.Jobs;

/// <summary>
/// Names of the Redis keys of the job queue. Every key of one job carries the job id as a hash tag
/// (<c>{id}</c>), so that they share a cluster slot and one script can touch them all.
/// </summary>
public static class JobKeys
{
    public const string Prefix = "effserve:";

    /// <summary>The consumer group every replica of a model reads the model's streams with.</summary>
    public const string Group = "workers";

    /// <summary>Hash: model, state, items, succeeded, failed, priority, submitted, owner.</summary>
    public static string Job(string id) => $"{Prefix}job:{{{id}}}";

    /// <summary>Hash: item index → the item's serialized ModelInferRequest.</summary>
    public static string Inputs(string id) => $"{Prefix}job:{{{id}}}:inputs";

    /// <summary>Hash: item index → the item's serialized JobResult; written once per index.</summary>
    public static string Results(string id) => $"{Prefix}job:{{{id}}}:results";

    /// <summary>Hash: item index → attempts started.</summary>
    public static string Attempts(string id) => $"{Prefix}job:{{{id}}}:attempts";

    /// <summary>Stream: one entry per result, in the order they were written (what StreamJobResults follows).</summary>
    public static string Events(string id) => $"{Prefix}job:{{{id}}}:events";

    /// <summary>Work items of a model at a priority (0 normal, 1 high): entries of (job, item).</summary>
    public static string Queue(string model, int priority) => $"{Prefix}jobs:{{{model}}}:p{priority}";

    /// <summary>Stream: items that failed every attempt, with their error.</summary>
    public static string DeadLetters(string model) => $"{Prefix}jobs:{{{model}}}:dead";

    /// <summary>Cache entries.</summary>
    public static string Cache(string model, string key) => $"{Prefix}cache:{model}:{key}";
}

/// <summary>The fields of a job's hash.</summary>
public static class JobFields
{
    public const string Model = "model";
    public const string State = "state";
    public const string Items = "items";
    public const string Succeeded = "succeeded";
    public const string Failed = "failed";
    public const string Priority = "priority";
    public const string Submitted = "submitted";

    /// <summary>The tenant that submitted the job ("" for an anonymous caller); only it may read or cancel the job.</summary>
    public const string Owner = "owner";

    /// <summary>Stream entry fields of a work item.</summary>
    public const string JobId = "job";
    public const string Index = "item";
    public const string Error = "error";
}

/// <summary>Values of the job hash's state field.</summary>
public static class JobStates
{
    public const string Queued = "queued";
    public const string Completed = "completed";
    public const string Cancelled = "cancelled";
}

/// <summary>
/// The tenant a call comes from, as the gateway tells the inference service once its door has
/// identified the caller (API key or bearer token). The gateway removes any value a client sends,
/// so the service can trust it only from the gateway: keep services reachable from nowhere else.
/// </summary>
public static class TenantHeader
{
    public const string Name = "effserve-tenant";

    /// <summary>A tenant name as the header carries it: percent-encoded UTF-8, since header values are ASCII.</summary>
    public static string Encode(string tenant) => Uri.EscapeDataString(tenant);
}
