using Grpc.Net.Client;
using Spectre.Console;

namespace EffServe.Cli;

/// <summary>
/// Everything a command touches outside itself: where human and machine output go, how a gRPC
/// channel is made, the environment and the clock. Program.cs builds the real one; tests build one
/// over string writers and an in-process server.
/// </summary>
public sealed class CliContext
{
    /// <summary>Human output: tables and lines.</summary>
    public required IAnsiConsole Console { get; init; }

    /// <summary>Machine output (--json) goes here, undecorated.</summary>
    public required TextWriter Out { get; init; }

    /// <summary>Error lines go here.</summary>
    public required TextWriter Error { get; init; }

    /// <summary>Makes the channel a command talks through; the command disposes it.</summary>
    public required Func<Uri, GrpcChannel> ChannelFactory { get; init; }

    /// <summary>Reads an environment variable; null when it is not set.</summary>
    public Func<string, string?> GetEnvironmentVariable { get; init; } = Environment.GetEnvironmentVariable;

    /// <summary>Folder relative paths (the default zoo) are resolved against.</summary>
    public string WorkingDirectory { get; init; } = Environment.CurrentDirectory;

    /// <summary>Clock for call deadlines.</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;

    /// <summary>
    /// Width of human output when stdout is not a terminal: wide enough that no table row or line
    /// wraps (a pipe or a file has no columns to fit).
    /// </summary>
    public const int PipedWidth = 10_000;

    /// <summary>
    /// The context of a real process: the terminal, stdout, stderr and real sockets. When stdout is
    /// piped or redirected, human output is plain (no colours, no progress bars) and never wrapped.
    /// </summary>
    public static CliContext CreateDefault() => new()
    {
        Console = System.Console.IsOutputRedirected ? CreatePipedConsole(System.Console.Out) : AnsiConsole.Console,
        Out = System.Console.Out,
        Error = System.Console.Error,
        ChannelFactory = static address => GrpcChannel.ForAddress(address),
    };

    /// <summary>
    /// The console for output that goes to a pipe or a file: no ANSI codes, no colours, not
    /// interactive (so no progress bars are drawn), and <see cref="PipedWidth"/> columns wide.
    /// </summary>
    public static IAnsiConsole CreatePipedConsole(TextWriter writer)
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
            Out = new AnsiConsoleOutput(writer),
        });
        console.Profile.Width = PipedWidth;
        return console;
    }
}
