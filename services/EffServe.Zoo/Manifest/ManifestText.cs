using System.Globalization;
using System.Text;
using EffServe.Core.Tensors;
using YamlDotNet.Core;
using YamlDotNet.Serialization;

namespace EffServe.Zoo.Manifest;

/// <summary>A variant entry to write into a manifest.</summary>
/// <param name="Name">The variant's name.</param>
/// <param name="Kind">fp32, int8, fp16 or early-exit.</param>
/// <param name="Provider">cpu, cuda or tensorrt.</param>
/// <param name="File">The model file, relative to the model folder (single-file variants).</param>
/// <param name="Stages">Stage files and their exit outputs (early exit).</param>
/// <param name="ExitThreshold">Early exit only.</param>
/// <param name="Comment">A line saying how the variant was made, written above it.</param>
public sealed record VariantEntry(
    string Name,
    string Kind,
    string Provider,
    string? File,
    IReadOnlyList<(string File, string Exit)>? Stages,
    double? ExitThreshold,
    string? Comment);

/// <summary>A new model's manifest.</summary>
public sealed record ManifestContent(
    string Name,
    string Task,
    string Description,
    int MaxBatchSize,
    IReadOnlyList<TensorSpec> Inputs,
    IReadOnlyList<TensorSpec> Outputs,
    string? LabelsFile,
    IReadOnlyDictionary<string, string>? EvaluationInputs,
    string? EvaluationLabels,
    IReadOnlyList<VariantEntry> Variants,
    string? HeaderComment);

/// <summary>
/// Writes manifests as people write them (docs/zoo.md), and adds variants to existing manifests by
/// editing their text, so that comments, order and layout survive.
/// </summary>
public static class ManifestText
{
    private static readonly IDeserializer s_yaml = new DeserializerBuilder().IgnoreUnmatchedProperties().Build();

    public static string Create(ManifestContent m)
    {
        var s = new StringBuilder();
        if (m.HeaderComment is not null)
        {
            foreach (var line in m.HeaderComment.Split('\n'))
            {
                s.Append("# ").AppendLine(line);
            }
        }

        s.AppendLine("# Format: docs/zoo.md. Profiles are written by `effserve zoo profile`, never by hand.");
        s.Append("name: ").AppendLine(m.Name);
        s.AppendLine("version: \"1\"");
        s.Append("task: ").AppendLine(Quote(m.Task));
        s.Append("description: ").AppendLine(Quote(m.Description));
        s.Append("max_batch_size: ").AppendLine(m.MaxBatchSize.ToString(CultureInfo.InvariantCulture));
        s.AppendLine();
        WriteTensors(s, "inputs", m.Inputs);
        s.AppendLine();
        WriteTensors(s, "outputs", m.Outputs);
        if (m.LabelsFile is not null)
        {
            s.AppendLine();
            s.Append("labels_file: ").AppendLine(Quote(m.LabelsFile));
        }

        if (m.EvaluationInputs is { Count: > 0 } evaluation && m.EvaluationLabels is not null)
        {
            s.AppendLine();
            s.AppendLine("evaluation:");
            s.AppendLine("  inputs:");
            foreach (var (input, file) in evaluation)
            {
                s.Append("    ").Append(Quote(input)).Append(": ").AppendLine(Quote(file));
            }

            s.Append("  labels: ").AppendLine(Quote(m.EvaluationLabels));
        }

        s.AppendLine();
        s.Append("default_variant: ").AppendLine(m.Variants[0].Name);
        s.AppendLine();
        s.AppendLine("variants:");
        for (var i = 0; i < m.Variants.Count; i++)
        {
            if (i > 0)
            {
                s.AppendLine();
            }

            foreach (var line in VariantLines(m.Variants[i]))
            {
                s.Append("  ").AppendLine(line);
            }
        }

        return s.ToString();
    }

    /// <summary>
    /// The manifest with <paramref name="variant"/> added at the end of its variant list, or in
    /// place of the variant of the same name.
    /// </summary>
    /// <exception cref="ZooToolException">The variant list is not a block list that can be edited (InvalidArgument).</exception>
    public static string WithVariant(string manifest, VariantEntry variant)
    {
        var newline = manifest.Contains("\r\n", StringComparison.Ordinal) ? "\r\n" : "\n";
        var lines = manifest.Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n').ToList();
        if (lines.Count > 0 && lines[^1].Length == 0)
        {
            lines.RemoveAt(lines.Count - 1);
        }

        var header = lines.FindIndex(l => l.StartsWith("variants:", StringComparison.Ordinal));
        if (header < 0)
        {
            lines.Add("");
            lines.Add("variants:");
            header = lines.Count - 1;
        }
        else if (!IsBlank(lines[header]["variants:".Length..]))
        {
            throw new ZooToolException(ZooToolError.InvalidArgument, "the manifest writes its variants inline (variants: [...]); write them as a block list (one '- name:' entry per variant) so tools can add to it.");
        }

        // The block runs until the next top-level key.
        var end = header + 1;
        while (end < lines.Count && (IsBlank(lines[end]) || lines[end].TrimStart().StartsWith('#') || char.IsWhiteSpace(lines[end][0]) || lines[end].StartsWith('-')))
        {
            end++;
        }

        var firstItem = Enumerable.Range(header + 1, end - header - 1).FirstOrDefault(i => lines[i].TrimStart().StartsWith("- ", StringComparison.Ordinal) || lines[i].Trim() == "-", -1);
        var indent = firstItem < 0 ? 2 : lines[firstItem].Length - lines[firstItem].TrimStart().Length;
        var items = Enumerable.Range(header + 1, end - header - 1)
            .Where(i => lines[i].Length > indent && lines[i][indent] == '-' && lines[i][..indent].Trim().Length == 0)
            .ToList();

        var newLines = VariantLines(variant).Select(l => new string(' ', indent) + l).ToList();
        for (var k = 0; k < items.Count; k++)
        {
            var start = items[k];
            var stop = k + 1 < items.Count ? items[k + 1] : end;
            while (stop > start + 1 && (IsBlank(lines[stop - 1]) || lines[stop - 1].TrimStart().StartsWith('#')))
            {
                stop--;
            }

            if (NameOf(lines.GetRange(start, stop - start), indent) != variant.Name)
            {
                continue;
            }

            // Replace the entry, and the comment lines right above it that tools wrote.
            while (start > header + 1 && lines[start - 1].TrimStart().StartsWith("# made by effserve zoo", StringComparison.Ordinal))
            {
                start--;
            }

            lines.RemoveRange(start, stop - start);
            lines.InsertRange(start, newLines);
            return string.Join(newline, lines) + newline;
        }

        var last = end;
        while (last > header + 1 && IsBlank(lines[last - 1]))
        {
            last--;
        }

        if (items.Count > 0)
        {
            newLines.Insert(0, "");
        }

        lines.InsertRange(last, newLines);
        return string.Join(newline, lines) + newline;
    }

    /// <summary>
    /// Text as a YAML scalar: plain when it is a simple name or path that YAML reads back as the
    /// same string, double-quoted otherwise.
    /// </summary>
    public static string Quote(string text)
    {
        if (IsPlain(text))
        {
            return text;
        }

        return DoubleQuote(text);
    }

    private static bool IsPlain(string text) =>
        text.Length > 0
        && (char.IsAsciiLetter(text[0]) || text[0] is '_' or '/')
        && text.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.' or '/')
        && !s_reserved.Contains(text);

    private static readonly HashSet<string> s_reserved = new(StringComparer.OrdinalIgnoreCase)
    {
        "true", "false", "yes", "no", "on", "off", "null", "y", "n", "nan", "inf",
    };

    private static string DoubleQuote(string text)
    {
        var s = new StringBuilder("\"");
        foreach (var c in text)
        {
            s.Append(c switch
            {
                '"' => "\\\"",
                '\\' => "\\\\",
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                _ when char.IsControl(c) => $"\\u{(int)c:x4}",
                _ => c.ToString(),
            });
        }

        return s.Append('"').ToString();
    }

    private static IEnumerable<string> VariantLines(VariantEntry v)
    {
        if (v.Comment is not null)
        {
            yield return "# made by effserve zoo: " + v.Comment.Replace('\n', ' ');
        }

        yield return "- name: " + v.Name;
        yield return "  kind: " + v.Kind;
        yield return "  provider: " + v.Provider;
        if (v.File is not null)
        {
            yield return "  file: " + Quote(v.File);
        }

        if (v.ExitThreshold is { } threshold)
        {
            yield return "  exit_threshold: " + threshold.ToString(CultureInfo.InvariantCulture);
        }

        if (v.Stages is { } stages)
        {
            yield return "  stages:";
            foreach (var (file, exit) in stages)
            {
                yield return "    - file: " + Quote(file);
                yield return "      exit: " + Quote(exit);
            }
        }
    }

    private static void WriteTensors(StringBuilder s, string key, IReadOnlyList<TensorSpec> tensors)
    {
        s.Append(key).AppendLine(":");
        foreach (var t in tensors)
        {
            s.Append("  - name: ").AppendLine(Quote(t.Name));
            s.Append("    datatype: ").AppendLine(t.DataType.ToWireName());
            s.Append("    shape: [").Append(string.Join(", ", t.Shape.Select(d => d.ToString(CultureInfo.InvariantCulture)))).AppendLine("]");
        }
    }

    /// <summary>The name of a list item, read by parsing its lines as YAML.</summary>
    private static string? NameOf(List<string> itemLines, int indent)
    {
        var text = string.Join('\n', itemLines.Select(l => l.Length >= indent ? l[indent..] : l.TrimStart()));
        try
        {
            var items = s_yaml.Deserialize<List<Dictionary<string, object?>>>(text);
            return items is [var item] && item.TryGetValue("name", out var name) ? name?.ToString() : null;
        }
        catch (YamlException)
        {
            return null;
        }
    }

    private static bool IsBlank(string line) => line.Trim().Length == 0 || line.TrimStart().StartsWith('#');
}
