namespace EffServe.Core.Tests.Support;

/// <summary>Locates the repository the tests were built from.</summary>
internal static class RepoPaths
{
    private static readonly Lazy<string> _root = new(FindRoot);

    /// <summary>The folder holding EffServe.sln.</summary>
    public static string Root => _root.Value;

    public static string Zoo => Path.Combine(Root, "zoo");

    public static string Digits => Path.Combine(Zoo, "digits");

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
