using EffServe.Core.Zoo;

namespace EffServe.Zoo.Manifest;

/// <summary>
/// Puts new models and variants into a zoo without ever leaving half of one behind: files are
/// written into a hidden staging folder beside their destination, checked with the server's own
/// loader, and moved into place; any failure removes what was staged and restores what was there.
/// </summary>
public static class ZooWriter
{
    private const string StagingPrefix = ".effserve-staging-";

    /// <summary>
    /// Creates model folder <paramref name="name"/> in <paramref name="zoo"/>: <paramref name="build"/>
    /// fills a staging folder (of the same name, so the loader's folder-name check applies) with
    /// the manifest and files, which must load cleanly before the folder moves into the zoo.
    /// </summary>
    /// <exception cref="ZooToolException">The model exists and <paramref name="replace"/> is false (AlreadyExists).</exception>
    /// <exception cref="ZooValidationException">What was built does not load.</exception>
    public static ModelDefinition CreateModel(string zoo, string name, bool replace, Action<string> build)
    {
        ZooNames.Check(name, "model name");
        var root = Path.GetFullPath(zoo);
        Directory.CreateDirectory(root);
        var target = Path.Combine(root, name);
        if (Directory.Exists(target) && !replace)
        {
            throw new ZooToolException(ZooToolError.AlreadyExists, $"{target} exists already; choose another --name or pass --force to replace it.");
        }

        var staging = Path.Combine(root, StagingPrefix + Guid.NewGuid().ToString("N")[..12]);
        var backup = Path.Combine(staging, ".previous");
        try
        {
            var folder = Path.Combine(staging, name);
            Directory.CreateDirectory(folder);
            build(folder);
            ZooModel.Load(folder);

            if (Directory.Exists(target))
            {
                Directory.Move(target, backup);
            }

            Directory.Move(folder, target);
            return ZooModel.Load(target);
        }
        catch
        {
            if (Directory.Exists(backup))
            {
                DeleteQuietly(target);
                Directory.Move(backup, target);
            }

            throw;
        }
        finally
        {
            DeleteQuietly(staging);
            DeleteQuietly(backup);
        }
    }

    /// <summary>
    /// Adds <paramref name="entry"/> to <paramref name="model"/>: <paramref name="build"/> writes
    /// the variant's files into a staging copy of folder <paramref name="folderName"/> (the
    /// entry's paths are relative to the model folder and start with it); then the folder moves
    /// into the model, the manifest gains the entry, and the model must load cleanly, or both are
    /// undone.
    /// </summary>
    public static ModelDefinition AddVariant(ZooModel model, VariantEntry entry, string folderName, bool replace, Action<string> build)
    {
        model.CheckNewVariant(entry.Name, replace);
        ZooNames.Check(folderName, "folder name");
        var target = Path.Combine(model.Folder, folderName);
        var staging = Path.Combine(model.Folder, StagingPrefix + Guid.NewGuid().ToString("N")[..12]);
        var backup = Path.Combine(staging, ".previous");
        var manifestBefore = File.ReadAllText(model.ManifestPath);
        var manifestAfter = ManifestText.WithVariant(manifestBefore, entry);
        var moved = false;
        var rewritten = false;
        try
        {
            var folder = Path.Combine(staging, folderName);
            Directory.CreateDirectory(folder);
            build(folder);

            if (Directory.Exists(target))
            {
                if (!replace)
                {
                    throw new ZooToolException(ZooToolError.AlreadyExists, $"{target} exists already; choose another --name or pass --force to replace it.");
                }

                Directory.Move(target, backup);
            }

            Directory.Move(folder, target);
            moved = true;
            WriteAtomically(model.ManifestPath, manifestAfter);
            rewritten = true;
            return ZooModel.Load(model.Folder);
        }
        catch
        {
            if (rewritten)
            {
                WriteAtomically(model.ManifestPath, manifestBefore);
            }

            if (moved)
            {
                DeleteQuietly(target);
            }

            if (Directory.Exists(backup))
            {
                Directory.Move(backup, target);
            }

            throw;
        }
        finally
        {
            DeleteQuietly(staging);
            DeleteQuietly(backup);
        }
    }

    /// <summary>Replaces a file's contents in one rename, so readers see the old or the new text, never a mix.</summary>
    public static void WriteAtomically(string path, string contents)
    {
        var temporary = path + ".tmp-" + Guid.NewGuid().ToString("N")[..8];
        try
        {
            File.WriteAllText(temporary, contents);
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

    private static void DeleteQuietly(string folder)
    {
        try
        {
            if (Directory.Exists(folder))
            {
                Directory.Delete(folder, recursive: true);
            }
        }
        catch (IOException)
        {
            // Leftover staging folders are hidden and harmless; the next run does not read them.
        }
    }
}
