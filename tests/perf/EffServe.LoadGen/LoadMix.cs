using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace EffServe.LoadGen;

/// <summary>
/// One class of requests in a mix: the latency budget every request of the class carries
/// (<c>effserve.slo_ms</c>), its share of the traffic, and optional accuracy floor, priority and
/// Triton timeout.
/// </summary>
public sealed record SloClass
{
    public required string Name { get; init; }

    /// <summary>End-to-end budget in milliseconds; a request meets its SLO when it answers within it, measured from its scheduled send time.</summary>
    public required double SloMs { get; init; }

    /// <summary>Relative share of the traffic (any positive number; shares are normalised).</summary>
    public double Weight { get; init; } = 1;

    /// <summary>Sent as <c>effserve.min_accuracy</c> when set.</summary>
    public double? MinAccuracy { get; init; }

    /// <summary>Sent as Triton's <c>priority</c> (1 = highest) when set.</summary>
    public long? Priority { get; init; }

    /// <summary>Sent as Triton's <c>timeout</c> (microseconds) when set.</summary>
    public long? TimeoutUs { get; init; }
}

/// <summary>The SLO classes of a trace. Read from JSON (<see cref="Parse"/>) or from short specs on a command line (<see cref="ParseSpecs"/>).</summary>
public sealed class LoadMix
{
    private static readonly JsonSerializerOptions s_json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    };

    public LoadMix(IReadOnlyList<SloClass> classes)
    {
        var problems = Check(classes);
        if (problems.Count > 0)
        {
            throw new LoadGenException("the SLO mix is not usable: " + string.Join("; ", problems));
        }

        Classes = classes;
    }

    public IReadOnlyList<SloClass> Classes { get; }

    /// <summary>
    /// The default mix: interactive traffic with a tight budget, most traffic at a medium one, and
    /// background-like traffic that tolerates a loose one.
    /// </summary>
    public static LoadMix Default { get; } = new(
    [
        new SloClass { Name = "tight", SloMs = 5, Weight = 0.3, Priority = 1 },
        new SloClass { Name = "medium", SloMs = 15, Weight = 0.5 },
        new SloClass { Name = "loose", SloMs = 50, Weight = 0.2 },
    ]);

    /// <summary>
    /// A mix from JSON: <c>{"classes": [{"name": "tight", "slo_ms": 5, "weight": 0.3, "min_accuracy": 0.95, "priority": 1, "timeout_us": 20000}, ...]}</c>
    /// or the bare array.
    /// </summary>
    /// <exception cref="LoadGenException">The JSON is malformed or a class is unusable; the message says which.</exception>
    public static LoadMix Parse(string json)
    {
        try
        {
            var trimmed = json.TrimStart();
            var classes = trimmed.StartsWith('[')
                ? JsonSerializer.Deserialize<List<SloClass>>(json, s_json)
                : JsonSerializer.Deserialize<MixDocument>(json, s_json)?.Classes;
            return classes is { Count: > 0 }
                ? new LoadMix(classes)
                : throw new LoadGenException("the SLO mix lists no classes: give {\"classes\": [{\"name\": ..., \"slo_ms\": ..., \"weight\": ...}]}.");
        }
        catch (JsonException e)
        {
            var where = e.LineNumber is { } line ? string.Create(CultureInfo.InvariantCulture, $" (line {line + 1})") : "";
            throw new LoadGenException($"the SLO mix is not valid JSON{where}: {e.Message}", e);
        }
    }

    /// <summary>Reads <see cref="Parse"/>'s JSON from a file.</summary>
    public static LoadMix Load(string path)
    {
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new LoadGenException($"cannot read the SLO mix {path}: {e.Message}", e);
        }

        try
        {
            return Parse(text);
        }
        catch (LoadGenException e)
        {
            throw new LoadGenException($"{path}: {e.Message}", e);
        }
    }

    /// <summary>
    /// A mix from specs <c>name:slo_ms[:weight[:min_accuracy[:priority]]]</c>, for example
    /// <c>tight:5:0.3::1</c> (an empty field keeps its default).
    /// </summary>
    public static LoadMix ParseSpecs(IEnumerable<string> specs)
    {
        var classes = new List<SloClass>();
        foreach (var spec in specs)
        {
            var parts = spec.Split(':');
            if (parts.Length is < 2 or > 5 || parts[0].Length == 0)
            {
                throw new LoadGenException($"'{spec}' is not a class spec: write name:slo_ms[:weight[:min_accuracy[:priority]]], for example tight:5:0.3::1.");
            }

            classes.Add(new SloClass
            {
                Name = parts[0],
                SloMs = Number(parts[1], spec, "slo_ms") ?? throw new LoadGenException($"'{spec}': slo_ms is required."),
                Weight = parts.Length > 2 ? Number(parts[2], spec, "weight") ?? 1 : 1,
                MinAccuracy = parts.Length > 3 ? Number(parts[3], spec, "min_accuracy") : null,
                Priority = parts.Length > 4 && parts[4].Length > 0
                    ? long.TryParse(parts[4], NumberStyles.Integer, CultureInfo.InvariantCulture, out var p) ? p : throw new LoadGenException($"'{spec}': priority '{parts[4]}' is not a whole number.")
                    : null,
            });
        }

        return classes.Count > 0 ? new LoadMix(classes) : throw new LoadGenException("no SLO classes given.");
    }

    /// <summary>Every problem of the classes, each naming the class and field.</summary>
    public static IReadOnlyList<string> Check(IReadOnlyList<SloClass> classes)
    {
        var problems = new List<string>();
        if (classes.Count == 0)
        {
            problems.Add("there are no classes");
        }

        var names = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < classes.Count; i++)
        {
            var c = classes[i];
            var label = string.IsNullOrWhiteSpace(c.Name) ? string.Create(CultureInfo.InvariantCulture, $"class {i}") : $"class '{c.Name}'";
            if (string.IsNullOrWhiteSpace(c.Name))
            {
                problems.Add($"{label}: name is required");
            }
            else if (!names.Add(c.Name))
            {
                problems.Add($"{label}: the name is used twice");
            }

            if (!(c.SloMs > 0) || double.IsInfinity(c.SloMs))
            {
                problems.Add(string.Create(CultureInfo.InvariantCulture, $"{label}: slo_ms must be a positive number of milliseconds, not {c.SloMs}"));
            }

            if (!(c.Weight > 0) || double.IsInfinity(c.Weight))
            {
                problems.Add(string.Create(CultureInfo.InvariantCulture, $"{label}: weight must be positive, not {c.Weight}"));
            }

            if (c.MinAccuracy is { } floor && !(floor is >= 0 and <= 1))
            {
                problems.Add(string.Create(CultureInfo.InvariantCulture, $"{label}: min_accuracy must lie in [0, 1], not {floor}"));
            }

            if (c.Priority is < 0)
            {
                problems.Add(string.Create(CultureInfo.InvariantCulture, $"{label}: priority must be 0 (default) or more (1 = highest), not {c.Priority}"));
            }

            if (c.TimeoutUs is <= 0)
            {
                problems.Add(string.Create(CultureInfo.InvariantCulture, $"{label}: timeout_us must be positive, not {c.TimeoutUs}"));
            }
        }

        return problems;
    }

    /// <summary>The shares of the classes, summing to one.</summary>
    public double[] Shares()
    {
        var total = Classes.Sum(c => c.Weight);
        return [.. Classes.Select(c => c.Weight / total)];
    }

    private static double? Number(string text, string spec, string field)
    {
        if (text.Length == 0)
        {
            return null;
        }

        return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value)
            ? value
            : throw new LoadGenException($"'{spec}': {field} '{text}' is not a number.");
    }

    private sealed class MixDocument
    {
        public List<SloClass>? Classes { get; set; }
    }
}

/// <summary>A problem with the load generator's input (mix, rates, evaluation set) or its run, said in one message a person can act on.</summary>
public sealed class LoadGenException : Exception
{
    public LoadGenException()
    {
    }

    public LoadGenException(string message)
        : base(message)
    {
    }

    public LoadGenException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
