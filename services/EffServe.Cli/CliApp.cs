using System.CommandLine;
using EffServe.Cli.Commands;
using EffServe.Cli.Commands.Zoo;

namespace EffServe.Cli;

/// <summary>The `effserve` command tree, and running it against a context.</summary>
public static class CliApp
{
    public static RootCommand Build(CliContext context)
    {
        var globals = new GlobalOptions();
        var root = new RootCommand("effserve: talk to an Open Inference Protocol v2 endpoint (EffServe, Triton, KServe) over gRPC.");
        root.Options.Add(globals.Endpoint);
        root.Options.Add(globals.Timeout);
        root.Subcommands.Add(ModelsCommand.Create(context, globals));
        root.Subcommands.Add(InferCommand.Create(context, globals));
        root.Subcommands.Add(ZooCommand.Create(context));
        root.Subcommands.Add(BenchCommand.Create(context, globals));
        return root;
    }

    /// <summary>Parses <paramref name="args"/> and runs the command; returns the exit code.</summary>
    public static Task<int> RunAsync(string[] args, CliContext context, CancellationToken cancellationToken = default)
    {
        var configuration = new InvocationConfiguration { Output = context.Out, Error = context.Error };
        return Build(context).Parse(args).InvokeAsync(configuration, cancellationToken);
    }
}
