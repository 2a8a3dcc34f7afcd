using System.CommandLine;

namespace EffServe.Cli.Commands.Zoo;

/// <summary>
/// <c>effserve zoo</c>: tools that work on a local zoo folder: bring a model in, and make
/// INT8, FP16, early-exit and synthetic variants of it.
/// </summary>
public static class ZooCommand
{
    public static Command Create(CliContext context)
    {
        var command = new Command("zoo", "Work on a local model zoo: import models and make INT8, FP16, early-exit and synthetic variants");
        command.Subcommands.Add(ImportCommand.Create(context));
        command.Subcommands.Add(QuantizeCommand.Create(context));
        command.Subcommands.Add(Fp16Command.Create(context));
        command.Subcommands.Add(EarlyExitCommand.Create(context));
        command.Subcommands.Add(SynthCommand.Create(context));
        command.Subcommands.Add(ProfileCommand.Create(context));
        return command;
    }
}
