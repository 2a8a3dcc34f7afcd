using System.Diagnostics;
using System.Globalization;

namespace EffServe.GatewayBench;

/// <summary>What the benchmark needs on the machine: the services' Release binaries and nginx.</summary>
internal static class Prerequisites
{
    /// <summary>The Release binary of a service, built first when it is missing.</summary>
    public static string ServiceDll(string root, string project, bool noBuild)
    {
        var dll = Path.Combine(root, "services", project, "bin", "Release", "net10.0", project + ".dll");
        if (File.Exists(dll))
        {
            var sources = Directory.EnumerateFiles(Path.Combine(root, "services", project), "*.cs", SearchOption.AllDirectories)
                .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal) && !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}", StringComparison.Ordinal));
            var newest = sources.Select(File.GetLastWriteTimeUtc).DefaultIfEmpty(DateTime.MinValue).Max();
            if (newest > File.GetLastWriteTimeUtc(dll))
            {
                Log.Line($"warning: {project}'s sources are newer than {dll}; `dotnet build tests/perf/EffServe.GatewayBench -c Release` rebuilds it.");
            }

            return dll;
        }

        if (noBuild)
        {
            throw new BenchException($"{dll} is missing; build it with `dotnet build services/{project} -c Release`.");
        }

        Log.Line($"{dll} is missing; building services/{project} (Release) ...");
        var (code, output) = Run("dotnet", ["build", Path.Combine(root, "services", project), "-c", "Release", "-nologo", "-v", "quiet"], root);
        if (code != 0 || !File.Exists(dll))
        {
            throw new BenchException($"`dotnet build services/{project} -c Release` failed (exit {code}):{Environment.NewLine}{Last(output, 30)}");
        }

        return dll;
    }

    /// <summary>The nginx binary, installed from Debian's packages when it is missing and we may.</summary>
    public static string Nginx()
    {
        if (Find("nginx") is { } found)
        {
            return found;
        }

        if (Find("apt-get") is null || Environment.UserName != "root")
        {
            throw new BenchException("nginx is not installed and cannot be installed from here; run `apt-get install -y nginx` as root (Debian's 1.22 package; it does not start a server) and try again.");
        }

        Log.Line("nginx is missing; installing Debian's package (apt-get install -y nginx) ...");
        var environment = new Dictionary<string, string> { ["DEBIAN_FRONTEND"] = "noninteractive" };
        var (code, output) = Run("apt-get", ["install", "-y", "-q", "nginx"], "/", environment);
        if (code != 0)
        {
            _ = Run("apt-get", ["update", "-q"], "/", environment);
            (code, output) = Run("apt-get", ["install", "-y", "-q", "nginx"], "/", environment);
        }

        return code == 0 && Find("nginx") is { } installed
            ? installed
            : throw new BenchException($"Installing nginx failed (exit {code}); install it with `apt-get install -y nginx` and try again:{Environment.NewLine}{Last(output, 20)}");
    }

    /// <summary>A program on PATH or in the sbin folders, or null.</summary>
    public static string? Find(string program)
    {
        var folders = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Concat(["/usr/sbin", "/sbin", "/usr/local/sbin"]);
        return folders.Select(f => Path.Combine(f, program)).FirstOrDefault(File.Exists);
    }

    /// <summary>Runs a program to its end; its exit code and its stdout and stderr together.</summary>
    public static (int Code, string Output) Run(string fileName, IEnumerable<string> arguments, string workingDirectory, IReadOnlyDictionary<string, string>? environment = null)
    {
        var info = new ProcessStartInfo(fileName)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[key] = value;
        }

        using var process = Process.Start(info) ?? throw new BenchException($"Could not start {fileName}.");
        var stderr = process.StandardError.ReadToEndAsync();
        var stdout = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, stdout + stderr.GetAwaiter().GetResult());
    }

    /// <summary>The first line a program prints (stdout or stderr), or "unknown".</summary>
    public static string FirstLine(string fileName, params string[] arguments)
    {
        try
        {
            var (_, output) = Run(fileName, arguments, "/");
            return output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault() ?? "unknown";
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return "unknown";
        }
    }

    public static string Last(string text, int lines) =>
        string.Join(Environment.NewLine, text.Split('\n').TakeLast(lines));
}

/// <summary>A failure the benchmark explains in one message (exit code 1, no stack trace).</summary>
internal sealed class BenchException(string message) : Exception(message);

/// <summary>Progress lines, on stderr so that stdout holds only the results.</summary>
internal static class Log
{
    private static readonly Stopwatch s_clock = Stopwatch.StartNew();

    public static void Line(string text) =>
        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"[{s_clock.Elapsed.TotalSeconds,6:F1}s] {text}"));
}
