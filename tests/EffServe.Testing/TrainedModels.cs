namespace EffServe.Testing;

/// <summary>
/// Copies of the demo models as training leaves them: the fp32 and early-exit variants, no
/// variants made by `effserve zoo` (int8, fp16) and no measured profiles. Tests that edit a
/// manifest or make variants start from this, whatever `make zoo` has added to the committed zoo.
/// </summary>
public static class TrainedModels
{
    private static readonly string[] s_derivedFolders = ["int8", "fp16"];

    /// <summary>Copies a model folder; a demo-zoo model loses what `effserve zoo` made, any other folder is copied as it is.</summary>
    public static void CopyAsTrained(string modelFolder, string target)
    {
        var demo = Path.GetFullPath(modelFolder).StartsWith(Path.GetFullPath(RepoPaths.Zoo) + Path.DirectorySeparatorChar, StringComparison.Ordinal);
        Directory.CreateDirectory(target);
        foreach (var file in Directory.EnumerateFiles(modelFolder, "*", SearchOption.AllDirectories))
        {
            var relative = Path.GetRelativePath(modelFolder, file);
            if (demo && s_derivedFolders.Contains(relative.Split(Path.DirectorySeparatorChar)[0], StringComparer.Ordinal))
            {
                continue;
            }

            var destination = Path.Combine(target, relative);
            Directory.CreateDirectory(Path.GetDirectoryName(destination)!);
            if (demo && relative == "model.yaml")
            {
                File.WriteAllText(destination, AsTrained(File.ReadAllText(file)));
            }
            else
            {
                File.Copy(file, destination);
            }
        }
    }

    /// <summary>The manifest without int8/fp16 variants and without `profile:` blocks, its text otherwise kept.</summary>
    public static string AsTrained(string manifest)
    {
        var lines = manifest.Split('\n');
        var kept = new List<string>();
        var i = 0;
        while (i < lines.Length)
        {
            var line = lines[i];
            if (line.StartsWith("  - name:", StringComparison.Ordinal))
            {
                // One variant: up to the next variant or the next top-level key.
                var end = i + 1;
                while (end < lines.Length && !lines[end].StartsWith("  - ", StringComparison.Ordinal) && !(lines[end].Length > 0 && lines[end][0] != ' ' && lines[end][0] != '#'))
                {
                    end++;
                }

                var item = lines[i..end];
                var derived = item.Any(l => l.Trim() is "kind: int8" or "kind: fp16");
                if (!derived)
                {
                    kept.AddRange(WithoutProfile(item));
                }

                i = end;
                continue;
            }

            kept.Add(line);
            i++;
        }

        // A comment line left dangling right before a dropped variant is harmless; trailing blank lines are trimmed to one.
        var text = string.Join('\n', kept).TrimEnd('\n', ' ') + "\n";
        return text;
    }

    private static IEnumerable<string> WithoutProfile(string[] item)
    {
        var skipIndent = -1;
        foreach (var line in item)
        {
            var indent = line.Length - line.TrimStart(' ').Length;
            if (skipIndent >= 0 && line.Trim().Length > 0 && indent > skipIndent)
            {
                continue;
            }

            skipIndent = -1;
            if (line.TrimStart(' ').StartsWith("profile:", StringComparison.Ordinal))
            {
                skipIndent = indent;
                continue;
            }

            yield return line;
        }
    }
}
