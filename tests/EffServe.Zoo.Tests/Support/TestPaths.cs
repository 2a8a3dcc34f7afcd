using EffServe.Testing;

namespace EffServe.Zoo.Tests.Support;

/// <summary>Files of the committed demo zoo and the fixtures.</summary>
internal static class TestPaths
{
    public static string DigitsFolder => Path.Combine(RepoPaths.Zoo, "digits");

    public static string DigitsModel => Path.Combine(DigitsFolder, "fp32", "digits.onnx");

    public static string DigitsStage(int k) => Path.Combine(DigitsFolder, "early-exit", $"stage{k}.onnx");

    public static string DigitsImages => Path.Combine(DigitsFolder, "eval", "images.npy");

    public static string DigitsLabels => Path.Combine(DigitsFolder, "eval", "labels.npy");

    public static string Fixture(string model, string file) => Path.Combine(RepoPaths.FixtureZoo, model, file);
}

/// <summary>A folder under the system temp folder, deleted with everything in it on dispose.</summary>
internal sealed class TempFolder : IDisposable
{
    public TempFolder()
    {
        Path = Directory.CreateTempSubdirectory("effserve-zoo-tests-").FullName;
    }

    public string Path { get; }

    public string Combine(params string[] parts) => System.IO.Path.Combine([Path, .. parts]);

    /// <summary>Every file under the folder, relative to it, sorted: what a failed command must leave unchanged.</summary>
    public IReadOnlyList<string> Listing() => Directory.EnumerateFileSystemEntries(Path, "*", SearchOption.AllDirectories)
        .Select(p => System.IO.Path.GetRelativePath(Path, p))
        .Order(StringComparer.Ordinal)
        .ToList();

    public void Dispose() => Directory.Delete(Path, recursive: true);
}
