using System.CommandLine;
using EffServe.Cli.Inference;

namespace EffServe.Cli.Commands.Zoo;

/// <summary>Options the zoo commands share, made fresh for each command.</summary>
internal static class ZooOptions
{
    public static Option<string?> Zoo() => new("--zoo")
    {
        Description = $"Zoo folder [default: ${EvalSet.EnvironmentVariable}, else ./{EvalSet.DefaultFolder}]",
        HelpName = "dir",
    };

    public static Option<string> Model() => new("--model", "-m") { Description = "Model (folder) in the zoo", Required = true, HelpName = "name" };

    public static Option<string> From() => new("--from")
    {
        Description = "Variant to convert from",
        DefaultValueFactory = _ => "fp32",
        HelpName = "variant",
    };

    public static Option<bool> Force() => new("--force") { Description = "Replace a model or variant of the same name" };

    public static Option<int?> Samples(string description) => new("--samples") { Description = description, HelpName = "n" };

    /// <summary>The zoo folder: the option when given, else EFFSERVE_ZOO, else ./zoo, against the working directory.</summary>
    public static string ResolveZoo(CliContext context, string? option) =>
        EvalSet.ResolveZoo(option, context.GetEnvironmentVariable, context.WorkingDirectory);

    /// <summary>A path given on the command line, against the working directory.</summary>
    public static string ResolvePath(CliContext context, string path) => Path.GetFullPath(path, context.WorkingDirectory);

    /// <summary>Comma-separated values, or several occurrences of the option, as one list.</summary>
    public static List<string> SplitList(IEnumerable<string>? values) =>
        (values ?? []).SelectMany(v => v.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).ToList();
}
