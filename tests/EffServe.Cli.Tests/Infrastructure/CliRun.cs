using Grpc.Net.Client;
using Spectre.Console;

namespace EffServe.Cli.Tests.Infrastructure;

/// <summary>The outcome of one in-process run of the command line.</summary>
public sealed record CliResult(int ExitCode, string Stdout, string Stderr);

/// <summary>Runs `effserve` in-process over string writers, with a chosen environment.</summary>
public static class CliRun
{
    public static async Task<CliResult> RunAsync(params string[] args) => await RunAsync(new Dictionary<string, string>(), args);

    public static async Task<CliResult> RunAsync(IReadOnlyDictionary<string, string> environment, params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var context = CreateContext(stdout, stderr, environment);
        var code = await CliApp.RunAsync(args, context, TestContext.Current.CancellationToken);
        return new CliResult(code, stdout.ToString(), stderr.ToString());
    }

    /// <summary>
    /// Runs `effserve` as it runs with stdout piped or redirected: on the console the process makes
    /// then (<see cref="CliContext.CreatePipedConsole"/>).
    /// </summary>
    public static async Task<CliResult> RunPipedAsync(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var context = new CliContext
        {
            Console = CliContext.CreatePipedConsole(stdout),
            Out = stdout,
            Error = stderr,
            ChannelFactory = static address => GrpcChannel.ForAddress(address),
            GetEnvironmentVariable = _ => null,
            WorkingDirectory = RepoPaths.Root,
        };
        var code = await CliApp.RunAsync(args, context, TestContext.Current.CancellationToken);
        return new CliResult(code, stdout.ToString(), stderr.ToString());
    }

    /// <summary>A context whose human and machine output both land in <paramref name="stdout"/>.</summary>
    public static CliContext CreateContext(StringWriter stdout, StringWriter stderr, IReadOnlyDictionary<string, string>? environment = null)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
            Out = new AnsiConsoleOutput(stdout),
        });
        console.Profile.Width = 200;
        return new CliContext
        {
            Console = console,
            Out = stdout,
            Error = stderr,
            ChannelFactory = static address => GrpcChannel.ForAddress(address),
            GetEnvironmentVariable = name => environment is not null && environment.TryGetValue(name, out var value) ? value : null,
            WorkingDirectory = RepoPaths.Root,
        };
    }
}
