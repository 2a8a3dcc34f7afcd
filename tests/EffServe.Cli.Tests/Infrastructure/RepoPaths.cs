namespace EffServe.Cli.Tests.Infrastructure;

/// <summary>Paths in the repository the tests run from.</summary>
public static class RepoPaths
{
    private static readonly Lazy<string> s_root = new(FindRoot);

    /// <summary>The folder holding EffServe.sln.</summary>
    public static string Root => s_root.Value;

    public static string Zoo => Path.Combine(Root, "zoo");

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "EffServe.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"No EffServe.sln above {AppContext.BaseDirectory}.");
    }
}
