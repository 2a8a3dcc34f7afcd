using EffServe.Testing;

namespace EffServe.Zoo.Tests.Support;

/// <summary>Runs `effserve` in-process (<see cref="CliRunner"/>).</summary>
internal static class ZooCli
{
    public static Task<CliOutcome> RunAsync(params string[] args) => CliRunner.RunAsync(args, TestContext.Current.CancellationToken);

    /// <summary>Copies a model folder as training leaves it (see <see cref="EffServe.Testing.TrainedModels"/>).</summary>
    public static void CopyFolder(string source, string target) => EffServe.Testing.TrainedModels.CopyAsTrained(source, target);
}
