using EffServe.Cli;
using EffServe.Testing;
using Grpc.Net.Client;
using Spectre.Console;

namespace EffServe.Zoo.Tests.Support;

/// <summary>The outcome of one in-process run of the command line.</summary>
internal sealed record CliOutcome(int ExitCode, string Stdout, string Stderr);

/// <summary>Runs `effserve` in-process over string writers, on a non-interactive console.</summary>
internal static class ZooCli
{
    public static async Task<CliOutcome> RunAsync(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
            Out = new AnsiConsoleOutput(stdout),
        });
        console.Profile.Width = 200;
        var context = new CliContext
        {
            Console = console,
            Out = stdout,
            Error = stderr,
            ChannelFactory = static address => GrpcChannel.ForAddress(address),
            GetEnvironmentVariable = _ => null,
            WorkingDirectory = RepoPaths.Root,
        };
        var code = await CliApp.RunAsync(args, context, TestContext.Current.CancellationToken);
        return new CliOutcome(code, stdout.ToString(), stderr.ToString());
    }

    /// <summary>Copies a model folder as training leaves it (see <see cref="EffServe.Testing.TrainedModels"/>).</summary>
    public static void CopyFolder(string source, string target) => EffServe.Testing.TrainedModels.CopyAsTrained(source, target);
}
