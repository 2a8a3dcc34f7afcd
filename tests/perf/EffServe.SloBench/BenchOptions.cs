using System.Globalization;

namespace EffServe.SloBench;

/// <summary>The SLO benchmark's command line.</summary>
internal sealed record BenchOptions
{
    public bool Quick { get; init; }

    public string Out { get; init; } = "";

    public string Model { get; init; } = "shapes";

    public int Seed { get; init; } = 20261126;

    public double Duration { get; init; } = 3;

    public int Repeats { get; init; } = 3;

    /// <summary>Offered rates as multiples of fixed fp32's measured capacity.</summary>
    public IReadOnlyList<double> Factors { get; init; } = [0.25, 0.5, 0.75, 1, 1.25, 1.5, 2, 2.5, 3];

    /// <summary>Explicit rates (requests/s), instead of factors of the capacity.</summary>
    public IReadOnlyList<double>? Rates { get; init; }

    public string? MixFile { get; init; }

    public bool NoBuild { get; init; }

    /// <summary>The command line as given, for the report.</summary>
    public string Command { get; init; } = "";

    /// <summary>The repository: the folder above this program that holds EffServe.sln.</summary>
    public static string Root { get; } = FindRoot();

    /// <summary>Parses the arguments; prints the problem and returns null when they are wrong.</summary>
    public static BenchOptions? Parse(string[] args)
    {
        var options = new BenchOptions
        {
            Out = Path.Combine(Root, "artifacts", "bench-slo"),
            Command = "make bench-slo" + (args.Length > 0 ? " BENCH_ARGS=\"" + string.Join(' ', args) + "\"" : ""),
        };
        try
        {
            for (var i = 0; i < args.Length; i++)
            {
                string Value() => i + 1 < args.Length ? args[++i] : throw new FormatException($"{args[i]} needs a value.");
                options = args[i] switch
                {
                    "--quick" => options with { Quick = true, Duration = 1, Repeats = 1, Factors = [0.5, 1.5] },
                    "--out" => options with { Out = Path.GetFullPath(Value()) },
                    "--model" => options with { Model = Value() },
                    "--seed" => options with { Seed = int.Parse(Value(), CultureInfo.InvariantCulture) },
                    "--duration" => options with { Duration = Positive(Value(), "--duration") },
                    "--repeats" => options with { Repeats = (int)Positive(Value(), "--repeats") },
                    "--factors" => options with { Factors = List(Value(), "--factors") },
                    "--rates" => options with { Rates = List(Value(), "--rates") },
                    "--mix" => options with { MixFile = Path.GetFullPath(Value()) },
                    "--no-build" => options with { NoBuild = true },
                    _ => throw new FormatException($"unknown option {args[i]}; options: --quick --out DIR --model NAME --seed N --duration S --repeats R --factors a,b,... --rates a,b,... --mix FILE --no-build"),
                };
            }
        }
        catch (FormatException e)
        {
            Console.Error.WriteLine("error: " + e.Message);
            return null;
        }

        return options;
    }

    private static double Positive(string text, string option) =>
        double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) && value > 0 && double.IsFinite(value)
            ? value
            : throw new FormatException($"{option} takes a positive number, not '{text}'.");

    private static double[] List(string text, string option) =>
        [.. text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(t => Positive(t, option))];

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "EffServe.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"No EffServe.sln above {AppContext.BaseDirectory}.");
    }
}
