using System.Diagnostics;
using EffServe.Testing;

namespace EffServe.Deploy.Tests.Support;

/// <summary>The outcome of a finished process.</summary>
public sealed record ProcessResult(int ExitCode, string Output, string Error)
{
    public string All => Output + Error;
}

/// <summary>helm, node and the schema validators that tests/prerequisites.sh installs under artifacts/tools.</summary>
public static class Tools
{
    public static string Dir => Path.Combine(RepoPaths.Root, "artifacts", "tools");

    public static string Helm => Path.Combine(Dir, "node_modules", ".bin", "helm");

    public static string Chart => Path.Combine(RepoPaths.Root, "helm", "effserve");

    public static string TestDir => Path.Combine(RepoPaths.Root, "tests", "EffServe.Deploy.Tests");

    /// <summary>Kubernetes version the chart is rendered for (helm 3.6.2 otherwise assumes 1.20).</summary>
    public const string KubeVersion = "1.30.0";

    /// <summary>Runs a program to its end; throws with its output when it takes longer than <paramref name="timeout"/>.</summary>
    public static async Task<ProcessResult> RunAsync(string program, IEnumerable<string> args, TimeSpan timeout, string? workingDirectory = null)
    {
        var start = new ProcessStartInfo(program)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = workingDirectory ?? RepoPaths.Root,
        };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        if (program == Helm && !File.Exists(Helm))
        {
            throw new InvalidOperationException($"helm is not installed at {Helm}; run `bash tests/prerequisites.sh`.");
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not start {program}.");
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{program} {string.Join(' ', start.ArgumentList)} ran longer than {timeout}: {await output}{await error}");
        }

        return new ProcessResult(process.ExitCode, await output, await error);
    }

    /// <summary><c>helm template</c> of the chart with the given values files and --set pairs.</summary>
    public static Task<ProcessResult> TemplateAsync(IEnumerable<string> valuesFiles, params string[] sets)
    {
        var args = new List<string> { "template", "effserve", Chart, "--namespace", "effserve", "--kube-version", KubeVersion };
        foreach (var file in valuesFiles)
        {
            args.AddRange(["-f", file]);
        }

        foreach (var set in sets)
        {
            args.AddRange(["--set", set]);
        }

        return RunAsync(Helm, args, TimeSpan.FromMinutes(1));
    }

    /// <summary>Checks YAML files against the Kubernetes (and KEDA, Prometheus Operator) schemas of their kinds.</summary>
    public static Task<ProcessResult> ValidateSchemasAsync(params string[] files) =>
        RunAsync("node", [Path.Combine(TestDir, "validate-schemas.mjs"), Dir, .. files], TimeSpan.FromMinutes(1));
}
