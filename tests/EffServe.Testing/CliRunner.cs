using EffServe.Cli;
using Grpc.Net.Client;
using Spectre.Console;

namespace EffServe.Testing;

/// <summary>The outcome of one in-process run of the command line.</summary>
public sealed record CliOutcome(int ExitCode, string Stdout, string Stderr);

/// <summary>
/// Runs `effserve` in-process over string writers, on a non-interactive console without colours,
/// with no environment variables and the repository root as working directory. Projects that use it
/// reference EffServe.Cli themselves.
/// </summary>
public static class CliRunner
{
    public static async Task<CliOutcome> RunAsync(string[] args, CancellationToken cancellationToken, int width = 200)
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
        console.Profile.Width = width;
        var context = new CliContext
        {
            Console = console,
            Out = stdout,
            Error = stderr,
            ChannelFactory = static address => GrpcChannel.ForAddress(address),
            GetEnvironmentVariable = _ => null,
            WorkingDirectory = RepoPaths.Root,
        };
        var code = await CliApp.RunAsync(args, context, cancellationToken).ConfigureAwait(false);
        return new CliOutcome(code, stdout.ToString(), stderr.ToString());
    }
}
