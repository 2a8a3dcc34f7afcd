using System.Globalization;
using System.Text;
using EffServe.Core.Zoo;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using YamlDotNet.Core;
using YamlDotNet.Core.Events;
using YamlDotNet.RepresentationModel;

namespace EffServe.Zoo.Profiling;

/// <summary>
/// Writes measured profiles into a model's manifest. The YAML is edited as a node tree: only the
/// <c>profile</c> node of each profiled variant is replaced (or added after its other keys);
/// every other key keeps its value, style and order. The YAML library drops comments, so the
/// leading comment block is put back; blank lines between top-level keys and between list entries
/// are kept too. Comments further down are lost (see <see cref="ManifestEdit.DroppedComments"/>).
/// The file is replaced atomically and then loaded again as the service would load it; if that
/// fails, the original bytes are put back.
/// </summary>
public sealed class ManifestProfileWriter
{
    private readonly IGraphReader _graphs;
    private readonly ILogger _logger;

    public ManifestProfileWriter(IGraphReader graphs, ILogger? logger = null)
    {
        _graphs = graphs;
        _logger = logger ?? NullLogger.Instance;
    }

    /// <summary>Writes <paramref name="profiles"/> (variant name → profile) into the manifest of <paramref name="modelDirectory"/>.</summary>
    /// <returns>The model as loaded from the written manifest, and how many comments could not be kept.</returns>
    /// <exception cref="ZooToolException">
    /// The manifest could not be edited, written or loaded again (VerificationFailed; NotFound when it
    /// does not exist); it is byte for byte what it was before.
    /// </exception>
    public WrittenManifest Write(string modelDirectory, IReadOnlyDictionary<string, VariantProfile> profiles)
    {
        var directory = Path.GetFullPath(modelDirectory);
        var manifest = Path.Combine(directory, ZooLoader.ManifestFileName);

        string target;
        byte[] original;
        try
        {
            // A manifest that is a link is edited where it leads, and stays a link.
            target = File.ResolveLinkTarget(manifest, returnFinalTarget: true)?.FullName ?? manifest;
            original = File.ReadAllBytes(target);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ZooToolException(e is FileNotFoundException or DirectoryNotFoundException ? ZooToolError.NotFound : ZooToolError.VerificationFailed, $"cannot read {manifest}: {e.Message}", e);
        }

        var hasBom = original.AsSpan().StartsWith(Encoding.UTF8.Preamble);
        var text = Encoding.UTF8.GetString(hasBom ? original[3..] : original);
        var edit = Apply(text, profiles, manifest);
        var updated = Encoding.UTF8.GetBytes(edit.Text);
        try
        {
            Replace(target, hasBom ? [.. Encoding.UTF8.Preamble, .. updated] : updated);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ZooToolException(ZooToolError.VerificationFailed, $"cannot write {manifest}: {e.Message} The manifest is unchanged.", e);
        }

        string problem;
        try
        {
            var model = new ZooLoader(_graphs).LoadModel(directory);
            var lost = profiles.Keys.Where(name => model.FindVariant(name)?.Profile is null).ToList();
            if (lost.Count == 0)
            {
                return new WrittenManifest(model, edit.DroppedComments);
            }

            problem = $"the reloaded manifest has no profile for {string.Join(", ", lost)}.";
        }
        catch (ZooValidationException e)
        {
            problem = e.Message;
        }

        ProfileLog.ManifestRestored(_logger, manifest, problem);
        try
        {
            Replace(target, original);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ZooToolException(ZooToolError.VerificationFailed, $"the profiled {manifest} does not load ({problem}), and putting the original back failed: {e.Message}", e);
        }

        throw new ZooToolException(ZooToolError.VerificationFailed, $"the profiled manifest did not load again, so the original {manifest} is back in place: {problem}");
    }

    /// <summary>
    /// The manifest text with the profiles put in. Pure: reads and writes no files.
    /// </summary>
    /// <param name="text">The manifest as it is.</param>
    /// <param name="profiles">Variant name → profile; every name must be a variant of the manifest.</param>
    /// <param name="where">Names the manifest in error messages.</param>
    /// <exception cref="ZooToolException">The text is not a manifest with those variants (VerificationFailed).</exception>
    public static ManifestEdit Apply(string text, IReadOnlyDictionary<string, VariantProfile> profiles, string where = ZooLoader.ManifestFileName)
    {
        var newLine = text.Contains("\r\n", StringComparison.Ordinal) ? "\r\n" : "\n";
        var lines = text.Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n');

        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(text));
        }
        catch (YamlException e)
        {
            throw new ZooToolException(ZooToolError.VerificationFailed, $"{where}:{e.Start.Line}:{e.Start.Column}: cannot be read as YAML: {e.Message}", e);
        }

        if (stream.Documents.Count != 1 || stream.Documents[0].RootNode is not YamlMappingNode root)
        {
            throw new ZooToolException(ZooToolError.VerificationFailed, $"{where}: a manifest is one YAML document whose top level is a mapping of keys.");
        }

        if (!root.Children.TryGetValue(new YamlScalarNode("variants"), out var variantsNode) || variantsNode is not YamlSequenceNode variants)
        {
            throw new ZooToolException(ZooToolError.VerificationFailed, $"{where}: has no 'variants' list to write profiles into.");
        }

        var blanks = FindBlankLines(lines, root);
        var header = lines.TakeWhile(l => l.TrimStart().StartsWith('#') || l.Trim().Length == 0).ToList();
        var dropped = CountComments(text) - header.Count(l => l.TrimStart().StartsWith('#'));

        var inserted = new HashSet<YamlNode>(ReferenceEqualityComparer.Instance);
        foreach (var (name, profile) in profiles)
        {
            var entry = variants.Children.OfType<YamlMappingNode>().FirstOrDefault(v =>
                v.Children.TryGetValue(new YamlScalarNode("name"), out var n) && n is YamlScalarNode s && s.Value == name);
            if (entry is null)
            {
                throw new ZooToolException(ZooToolError.VerificationFailed, $"{where}: has no variant named '{name}' to write its profile into.");
            }

            // A profile is a block of lines: a one-line variant (or list) opens up into block style.
            entry.Style = MappingStyle.Block;
            variants.Style = SequenceStyle.Block;
            root.Style = MappingStyle.Block;

            // Replacing the value of an existing key keeps the key where it was.
            var node = ToNode(profile);
            entry.Children[new YamlScalarNode("profile")] = node;
            inserted.Add(node);
        }

        var settings = new EmitterSettings().WithBestWidth(int.MaxValue).WithNewLine("\n");
        if (UsesIndentedSequences(root) ?? true)
        {
            settings = settings.WithIndentedSequences();
        }

        using var writer = new StringWriter(CultureInfo.InvariantCulture);
        stream.Save(new Emitter(writer, settings), assignAnchors: false);
        var emittedText = writer.ToString().TrimEnd();
        if (emittedText.EndsWith("\n...", StringComparison.Ordinal))
        {
            emittedText = emittedText[..^4].TrimEnd();
        }

        // The emitter has its own spacing inside one-line flow collections ({a: 1}); put back the
        // original text of every one it wrote again, then the blank lines.
        var emitted = new YamlStream();
        emitted.Load(new StringReader(emittedText));
        var emittedRoot = (YamlMappingNode)emitted.Documents[0].RootNode;
        var flows = new List<(int Start, int End, string Text)>();
        CollectFlowText(root, emittedRoot, text, emittedText, inserted, flows);
        foreach (var (start, end, original) in flows.OrderByDescending(f => f.Start))
        {
            emittedText = string.Concat(emittedText.AsSpan(0, start), original, emittedText.AsSpan(end));
        }

        var body = emittedText.Split('\n').ToList();
        RestoreBlankLines(body, emittedRoot, blanks);
        var result = string.Join(newLine, header.Concat(body)) + newLine;
        return new ManifestEdit(result, Math.Max(0, dropped));
    }

    /// <summary>
    /// Walks the edited tree and the tree parsed back from the emitted text side by side (they have
    /// the same shape) and collects, for every flow collection that sits on one line in both, its
    /// span in the emitted text and its text in the original. New profile nodes are left as emitted.
    /// </summary>
    private static void CollectFlowText(YamlNode original, YamlNode emitted, string originalText, string emittedText, HashSet<YamlNode> inserted, List<(int, int, string)> flows)
    {
        if (inserted.Contains(original))
        {
            return;
        }

        var isFlow = original is YamlMappingNode { Style: MappingStyle.Flow } || original is YamlSequenceNode { Style: SequenceStyle.Flow };
        if (isFlow && emitted.GetType() == original.GetType() && !original.AllNodes.Any(inserted.Contains)
            && OneLineFlowEnd(originalText, (int)original.Start.Index) is { } originalEnd
            && OneLineFlowEnd(emittedText, (int)emitted.Start.Index) is { } emittedEnd)
        {
            var start = (int)original.Start.Index;
            flows.Add(((int)emitted.Start.Index, emittedEnd, originalText[start..originalEnd]));
            return;
        }

        if (original is YamlMappingNode om && emitted is YamlMappingNode em && om.Children.Count == em.Children.Count)
        {
            foreach (var (o, e) in om.Children.Values.Zip(em.Children.Values))
            {
                CollectFlowText(o, e, originalText, emittedText, inserted, flows);
            }
        }
        else if (original is YamlSequenceNode os && emitted is YamlSequenceNode es && os.Children.Count == es.Children.Count)
        {
            foreach (var (o, e) in os.Children.Zip(es.Children))
            {
                CollectFlowText(o, e, originalText, emittedText, inserted, flows);
            }
        }
    }

    /// <summary>Comments in the text, whole-line and trailing, as the YAML scanner sees them.</summary>
    private static int CountComments(string text)
    {
        var scanner = new Scanner(new StringReader(text), skipComments: false);
        var count = 0;
        while (scanner.MoveNext())
        {
            if (scanner.Current is YamlDotNet.Core.Tokens.Comment)
            {
                count++;
            }
        }

        return count;
    }

    /// <summary>The YAML of one profile, in the key order docs/zoo.md shows; list entries as one-line flow mappings.</summary>
    public static YamlMappingNode ToNode(VariantProfile profile)
    {
        var node = new YamlMappingNode();
        if (profile.MeasuredAt is not null)
        {
            node.Add("measured_at", Quoted(profile.MeasuredAt));
        }

        if (profile.Machine is not null)
        {
            node.Add("machine", Quoted(profile.Machine));
        }

        if (profile.Accuracy is { } accuracy)
        {
            node.Add("accuracy", Number(accuracy));
        }

        var latency = new YamlSequenceNode { Style = profile.Latency.Count == 0 ? SequenceStyle.Flow : SequenceStyle.Block };
        foreach (var l in profile.Latency)
        {
            latency.Add(Row(("batch_size", ProfileNumbers.Format(l.BatchSize)), ("p50_ms", ProfileNumbers.Format(l.P50Ms)), ("p95_ms", ProfileNumbers.Format(l.P95Ms)), ("items_per_second", ProfileNumbers.Format(l.ItemsPerSecond))));
        }

        node.Add("latency", latency);
        if (profile.Thresholds.Count > 0)
        {
            var thresholds = new YamlSequenceNode();
            foreach (var t in profile.Thresholds)
            {
                thresholds.Add(Row(("threshold", ProfileNumbers.Format(t.Threshold)), ("accuracy", ProfileNumbers.Format(t.Accuracy)), ("mean_stages", ProfileNumbers.Format(t.MeanStages)), ("mean_latency_ms", ProfileNumbers.Format(t.MeanLatencyMs))));
            }

            node.Add("thresholds", thresholds);
        }

        return node;
    }

    private static YamlScalarNode Quoted(string value) => new(value) { Style = ScalarStyle.DoubleQuoted };

    private static YamlScalarNode Number(double value) => new(ProfileNumbers.Format(value)) { Style = ScalarStyle.Plain };

    private static YamlMappingNode Row(params (string Key, string Value)[] cells)
    {
        var row = new YamlMappingNode { Style = MappingStyle.Flow };
        foreach (var (key, value) in cells)
        {
            row.Add(new YamlScalarNode(key), new YamlScalarNode(value) { Style = ScalarStyle.Plain });
        }

        return row;
    }

    /// <summary>
    /// Where the original has a blank line (perhaps followed by comments) before a top-level key or
    /// before an entry of a top-level block list: (index of the key, index of the entry or -1).
    /// </summary>
    private static List<(int Key, int Entry)> FindBlankLines(string[] lines, YamlMappingNode root)
    {
        var found = new List<(int, int)>();
        var i = 0;
        foreach (var (key, value) in root.Children)
        {
            if (i > 0 && BlankAbove(lines, key.Start))
            {
                found.Add((i, -1));
            }

            if (value is YamlSequenceNode { Style: not SequenceStyle.Flow } list)
            {
                for (var j = 1; j < list.Children.Count; j++)
                {
                    if (BlankAbove(lines, list.Children[j].Start))
                    {
                        found.Add((i, j));
                    }
                }
            }

            i++;
        }

        return found;
    }

    private static bool BlankAbove(string[] lines, Mark mark)
    {
        var k = (int)mark.Line - 2; // marks count lines from 1
        while (k >= 0 && lines[k].TrimStart().StartsWith('#'))
        {
            k--;
        }

        return k >= 0 && lines[k].Trim().Length == 0;
    }

    /// <summary>
    /// Where the flow collection opening at <paramref name="start"/> closes (the index after its
    /// bracket), when it closes on the same line; null otherwise. (The YAML library's nodes do not
    /// record where a collection ends.)
    /// </summary>
    private static int? OneLineFlowEnd(string text, int start)
    {
        if (start >= text.Length || text[start] is not ('{' or '['))
        {
            return null;
        }

        var depth = 0;
        for (var i = start; i < text.Length; i++)
        {
            switch (text[i])
            {
                case '\r' or '\n':
                    return null;
                case '{' or '[':
                    depth++;
                    break;
                case '}' or ']':
                    if (--depth == 0)
                    {
                        return i + 1;
                    }

                    break;
                case '"':
                    // Backslash escapes inside double quotes.
                    for (i++; i < text.Length && text[i] != '"'; i++)
                    {
                        i += text[i] == '\\' ? 1 : 0;
                    }

                    break;
                case '\'':
                    // A doubled quote is a quote inside single quotes; the loop reads it as close and reopen.
                    i = text.IndexOf('\'', i + 1);
                    if (i < 0)
                    {
                        return null;
                    }

                    break;
                default:
                    break;
            }
        }

        return null;
    }

    /// <summary>Puts the blank lines back, at the same keys and entries of the emitted text (found by parsing it).</summary>
    private static void RestoreBlankLines(List<string> body, YamlMappingNode emittedRoot, List<(int Key, int Entry)> blanks)
    {
        var entries = emittedRoot.Children.ToList();
        var at = new SortedSet<int>();
        foreach (var (key, entry) in blanks)
        {
            var node = entry < 0 ? entries[key].Key : ((YamlSequenceNode)entries[key].Value).Children[entry];
            var line = (int)node.Start.Line - 1;
            var column = (int)node.Start.Column - 1;

            // Only before a line that starts with this key or list entry: there a blank line changes nothing.
            if (line > 0 && line < body.Count && column <= body[line].Length && body[line][..column].All(c => c is ' ' or '-'))
            {
                at.Add(line);
            }
        }

        foreach (var line in at.Reverse())
        {
            body.Insert(line, "");
        }
    }

    /// <summary>Whether the manifest indents block lists under their key; null when it has none.</summary>
    private static bool? UsesIndentedSequences(YamlNode node)
    {
        if (node is YamlMappingNode mapping)
        {
            foreach (var (key, value) in mapping.Children)
            {
                if (value is YamlSequenceNode { Style: not SequenceStyle.Flow } list && list.Children.Count > 0)
                {
                    return list.Start.Column > key.Start.Column;
                }

                if (UsesIndentedSequences(value) is { } found)
                {
                    return found;
                }
            }
        }
        else if (node is YamlSequenceNode sequence)
        {
            foreach (var child in sequence.Children)
            {
                if (UsesIndentedSequences(child) is { } found)
                {
                    return found;
                }
            }
        }

        return null;
    }

    /// <summary>Replaces <paramref name="path"/> atomically: a temporary file beside it, flushed to disk, then renamed over it.</summary>
    private static void Replace(string path, byte[] contents)
    {
        var temporary = Path.Combine(Path.GetDirectoryName(path)!, $".{Path.GetFileName(path)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None))
            {
                stream.Write(contents);
                stream.Flush(flushToDisk: true);
            }

            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(temporary, File.GetUnixFileMode(path));
            }

            File.Move(temporary, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(temporary))
            {
                File.Delete(temporary);
            }
        }
    }
}

/// <summary>What <see cref="ManifestProfileWriter.Write"/> left on disk.</summary>
/// <param name="Model">The model loaded again from the written manifest.</param>
/// <param name="DroppedComments">Comments after the leading block, which could not be kept.</param>
public sealed record WrittenManifest(ModelDefinition Model, int DroppedComments);

/// <summary>A manifest with profiles put in.</summary>
/// <param name="Text">The new manifest.</param>
/// <param name="DroppedComments">Comments after the leading block (whole-line or trailing), which the edit could not keep.</param>
public sealed record ManifestEdit(string Text, int DroppedComments);
