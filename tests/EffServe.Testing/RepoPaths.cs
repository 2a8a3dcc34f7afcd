namespace EffServe.Testing;

/// <summary>Folders of the repository, found from the test binaries.</summary>
public static class RepoPaths
{
    private static readonly Lazy<string> s_root = new(() =>
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "EffServe.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"No EffServe.sln above {AppContext.BaseDirectory}.");
    });

    public static string Root => s_root.Value;

    /// <summary>The committed demo zoo.</summary>
    public static string Zoo => Path.Combine(Root, "zoo");

    /// <summary>Tiny fixture models: every datatype, BF16, and a model with a CUDA-only variant.</summary>
    public static string FixtureZoo => Path.Combine(Root, "tests", "fixtures", "zoo");
}
