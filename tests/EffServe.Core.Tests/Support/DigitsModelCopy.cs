using EffServe.Core.Zoo;

namespace EffServe.Core.Tests.Support;

/// <summary>
/// A private copy of zoo/digits in a fresh temporary zoo folder, which a test may edit freely.
/// Deleted on dispose.
/// </summary>
internal sealed class DigitsModelCopy : IDisposable
{
    public DigitsModelCopy()
    {
        ZooDirectory = Path.Combine(Path.GetTempPath(), "effserve-core-tests", Guid.NewGuid().ToString("N"));
        ModelDirectory = Path.Combine(ZooDirectory, "digits");
        // Tests edit the manifest as people write it: the trained variants only, no measured
        // profiles and no variants made by `effserve zoo`, which come and go with `make zoo`.
        EffServe.Testing.TrainedModels.CopyAsTrained(RepoPaths.Digits, ModelDirectory);
    }

    /// <summary>The temporary zoo folder; digits is its only model until a test adds more.</summary>
    public string ZooDirectory { get; }

    public string ModelDirectory { get; }

    public string ManifestPath => Path.Combine(ModelDirectory, ZooLoader.ManifestFileName);

    public string Manifest
    {
        get => File.ReadAllText(ManifestPath);
        set => File.WriteAllText(ManifestPath, value);
    }

    public string PathOf(string relative) => Path.Combine(ModelDirectory, relative);

    /// <summary>
    /// Replaces text that occurs exactly once in the manifest; fails otherwise, so that no edit is
    /// silently lost or applied twice.
    /// </summary>
    public void Edit(string oldText, string newText)
    {
        var manifest = Manifest;
        var at = manifest.IndexOf(oldText, StringComparison.Ordinal);
        if (at < 0 || manifest.IndexOf(oldText, at + 1, StringComparison.Ordinal) >= 0)
        {
            throw new InvalidOperationException($"The manifest must hold '{oldText}' exactly once:\n{manifest}");
        }

        Manifest = string.Concat(manifest.AsSpan(0, at), newText, manifest.AsSpan(at + oldText.Length));
    }

    /// <summary>
    /// Copies this model, as edited so far, to another folder of the zoo with its manifest's name
    /// changed to match; returns the new folder.
    /// </summary>
    public string AddModelCopy(string name)
    {
        var directory = Path.Combine(ZooDirectory, name);
        CopyDirectory(ModelDirectory, directory);
        var manifestPath = Path.Combine(directory, ZooLoader.ManifestFileName);
        var manifest = File.ReadAllText(manifestPath);
        File.WriteAllText(manifestPath, manifest.Replace("\nname: digits\n", $"\nname: {name}\n", StringComparison.Ordinal));
        return directory;
    }

    public void Dispose()
    {
        if (Directory.Exists(ZooDirectory))
        {
            Directory.Delete(ZooDirectory, recursive: true);
        }
    }

    private static void CopyDirectory(string source, string destination)
    {
        Directory.CreateDirectory(destination);
        foreach (var file in Directory.EnumerateFiles(source))
        {
            File.Copy(file, Path.Combine(destination, Path.GetFileName(file)));
        }

        foreach (var directory in Directory.EnumerateDirectories(source))
        {
            CopyDirectory(directory, Path.Combine(destination, Path.GetFileName(directory)));
        }
    }
}
