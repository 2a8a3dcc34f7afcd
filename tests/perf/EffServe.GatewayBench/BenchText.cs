using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace EffServe.GatewayBench;

/// <summary>
/// What the benchmarks that start processes share around their measurements: reading numbers from
/// the command line, the exit hooks that stop their children, and writing a report (intervals,
/// the command line, JSON).
/// </summary>
internal static class BenchText
{
    private static readonly CultureInfo s_inv = CultureInfo.InvariantCulture;

    /// <summary>Indented camelCase JSON that keeps NaN and infinities.</summary>
    public static JsonSerializerOptions Json { get; } = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public static int PositiveInt(string name, string value) =>
        int.TryParse(value, NumberStyles.Integer, s_inv, out var n) && n > 0
            ? n
            : throw new ArgumentException($"{name} must be a positive integer, not '{value}'.");

    public static double PositiveNumber(string name, string value) =>
        double.TryParse(value, NumberStyles.Float, s_inv, out var s) && s > 0 && double.IsFinite(s)
            ? s
            : throw new ArgumentException($"{name} must be a positive number, not '{value}'.");

    public static int Integer(string name, string value) =>
        int.TryParse(value, NumberStyles.Integer, s_inv, out var n)
            ? n
            : throw new ArgumentException($"{name} must be an integer, not '{value}'.");

    /// <summary>The value of --json at <paramref name="i"/>: the path that follows it, or "-" (stdout) when none does.</summary>
    public static string JsonTarget(IReadOnlyList<string> args, ref int i) =>
        i + 1 < args.Count && !args[i + 1].StartsWith("--", StringComparison.Ordinal) ? args[++i] : "-";

    /// <summary>
    /// Parses the command line; null with the exit code when the program should stop here: 0 after
    /// printing the usage for --help, 2 after printing the problem and the usage.
    /// </summary>
    public static (T? Options, int ExitCode) ParseOrExit<T>(IReadOnlyList<string> args, Func<IReadOnlyList<string>, T> parse, Func<T, bool> help, string usage)
        where T : class
    {
        try
        {
            var options = parse(args);
            if (!help(options))
            {
                return (options, 0);
            }

            Console.WriteLine(usage);
            return (null, 0);
        }
        catch (ArgumentException e)
        {
            Console.Error.WriteLine($"{e.Message}{Environment.NewLine}{Environment.NewLine}{usage}");
            return (null, 2);
        }
    }

    /// <summary>Runs <paramref name="cleanUp"/> however the process ends: normally, Ctrl-C, SIGTERM or SIGHUP. Dispose the result at the end of Main.</summary>
    public static IDisposable OnExit(Action cleanUp)
    {
        AppDomain.CurrentDomain.ProcessExit += (_, _) => cleanUp();
        Console.CancelKeyPress += (_, _) => cleanUp();
        return new Registrations(
            PosixSignalRegistration.Create(PosixSignal.SIGTERM, _ => cleanUp()),
            PosixSignalRegistration.Create(PosixSignal.SIGHUP, _ => cleanUp()));
    }

    /// <summary>
    /// Writes the results: JSON on stdout when <paramref name="json"/> is "-", otherwise the markdown
    /// on stdout and, when <paramref name="json"/> names a file, the JSON there too.
    /// </summary>
    public static async Task WriteResultsAsync(string? json, Func<string> markdown, Func<string> jsonText)
    {
        if (json == "-")
        {
            Console.WriteLine(jsonText());
            return;
        }

        Console.Write(markdown());
        if (json is { } path)
        {
            await File.WriteAllTextAsync(path, jsonText()).ConfigureAwait(false);
            Log.Line($"JSON written to {path}");
        }
    }

    /// <summary>The short git revision of <paramref name="root"/> ("unknown" outside git), whether tracked files have uncommitted changes, and the time now.</summary>
    public static (string Revision, bool Uncommitted, string Time) Provenance(string root) => (
        Machine.Command(root, "git", "rev-parse", "--short", "HEAD") is { Length: > 0 } rev ? rev : "unknown",
        Machine.Command(root, "git", "status", "--porcelain", "--untracked-files=no").Length > 0,
        TimeProvider.System.GetUtcNow().ToString("yyyy-MM-dd HH:mm 'UTC'", s_inv));

    /// <summary>A median with its interval: "12 (10 – 14)", or "n/a" without rounds.</summary>
    public static string Ci(Estimate e, string format) =>
        e.Rounds == 0 ? "n/a"
        : $"{e.Median.ToString(format, s_inv)} ({e.Low.ToString(format, s_inv)} – {e.High.ToString(format, s_inv)})";

    /// <summary>The command line that ran <paramref name="dll"/>, each argument quoted for a POSIX shell where it needs it.</summary>
    public static string Command(string dll, IEnumerable<string> args) => "dotnet " + dll + string.Concat(args.Select(a => " " + Quote(a)));

    private static string Quote(string arg) => arg.Length > 0 && arg.All(c => char.IsAsciiLetterOrDigit(c) || "-_./:=,+".Contains(c, StringComparison.Ordinal)) ? arg : $"'{arg.Replace("'", "'\\''", StringComparison.Ordinal)}'";

    private sealed class Registrations(params PosixSignalRegistration[] all) : IDisposable
    {
        public void Dispose()
        {
            foreach (var registration in all)
            {
                registration.Dispose();
            }
        }
    }
}
