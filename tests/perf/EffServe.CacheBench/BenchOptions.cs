using EffServe.GatewayBench;

namespace EffServe.CacheBench;

/// <summary>The benchmark's command line.</summary>
internal sealed class BenchOptions
{
    public const string Usage = """
        EffServe.CacheBench: the response cache (hit vs miss, cache on vs off) and asynchronous jobs
        (one job vs the same items sent online), through the gateway, against a real redis-server.

          dotnet tests/perf/EffServe.CacheBench/bin/Release/net10.0/EffServe.CacheBench.dll [options]

          --models A,B        models measured (default shapes,digits)
          --rounds N          interleaved rounds (default 10)
          --requests N        calls per latency arm per round, one in flight (default 200)
          --seconds S         seconds per throughput window (default 1.5)
          --callers N         concurrent callers for throughput and online job items (default 16)
          --distinct N        distinct inputs of the repeated-input workload (default 64)
          --job-model NAME    model of the job measurement (default shapes)
          --job-items N       items per job and per online batch (default 2000)
          --job-rounds N      rounds of the job measurement (default 4)
          --job-in-flight N   items the job worker runs at once (EffServe:Jobs:MaxInFlight; default:
                              the service's own default, 2)
          --quick             a smoke check: 2 rounds, 40 calls, 0.5 s windows, 1 job round of 200 items
          --seed N            seed of arm order and sample choice (default 20261126)
          --json [PATH]       write the results as JSON to PATH, or to stdout instead of markdown
          --no-build          fail instead of building missing service binaries
          --help              this text

        Needs redis-server on PATH (Debian's package: apt-get install -y redis-server).
        Progress goes to stderr; the markdown section (or JSON) to stdout.
        """;

    public IReadOnlyList<string> Models { get; private set; } = ["shapes", "digits"];

    public int Rounds { get; private set; } = 10;

    public int Requests { get; private set; } = 200;

    public double Seconds { get; private set; } = 1.5;

    public int Callers { get; private set; } = 16;

    public int Distinct { get; private set; } = 64;

    public string JobModel { get; private set; } = "shapes";

    public int JobItems { get; private set; } = 2000;

    public int JobRounds { get; private set; } = 4;

    /// <summary>EffServe:Jobs:MaxInFlight of the service running the jobs; null leaves the service's default.</summary>
    public int? JobInFlight { get; private set; }

    public bool Quick { get; private set; }

    public int Seed { get; private set; } = 20261126;

    /// <summary>Null: no JSON; "-": JSON on stdout instead of markdown; otherwise a file.</summary>
    public string? Json { get; private set; }

    public bool NoBuild { get; private set; }

    public bool Help { get; private set; }

    /// <summary>Warm-up windows (calls each) for every latency arm.</summary>
    public int WarmupCalls => Quick ? 30 : 60;

    public static BenchOptions Parse(IReadOnlyList<string> args)
    {
        var options = new BenchOptions();
        var quick = args.Contains("--quick");
        if (quick)
        {
            options.Quick = true;
            options.Rounds = 2;
            options.Requests = 40;
            options.Seconds = 0.5;
            options.JobItems = 200;
            options.JobRounds = 1;
        }

        for (var i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            string Next() => i + 1 < args.Count ? args[++i] : throw new ArgumentException($"{arg} needs a value.");
            switch (arg)
            {
                case "--models":
                    var models = Next().Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
                    options.Models = models.Length > 0 && models.All(ValidName) && models.Distinct(StringComparer.Ordinal).Count() == models.Length
                        ? models
                        : throw new ArgumentException($"--models is a comma-separated list of distinct model names (letters, digits, '-', '_'), not '{args[i]}'.");
                    break;
                case "--rounds":
                    options.Rounds = BenchText.PositiveInt(arg, Next());
                    break;
                case "--requests":
                    options.Requests = BenchText.PositiveInt(arg, Next());
                    break;
                case "--seconds":
                    options.Seconds = BenchText.PositiveNumber(arg, Next());
                    break;
                case "--callers":
                    options.Callers = BenchText.PositiveInt(arg, Next());
                    break;
                case "--distinct":
                    options.Distinct = BenchText.PositiveInt(arg, Next());
                    break;
                case "--job-model":
                    var jobModel = Next();
                    options.JobModel = ValidName(jobModel) ? jobModel : throw new ArgumentException($"--job-model is a model name (letters, digits, '-', '_'), not '{jobModel}'.");
                    break;
                case "--job-items":
                    options.JobItems = BenchText.PositiveInt(arg, Next());
                    break;
                case "--job-rounds":
                    options.JobRounds = BenchText.PositiveInt(arg, Next());
                    break;
                case "--job-in-flight":
                    options.JobInFlight = BenchText.PositiveInt(arg, Next());
                    break;
                case "--quick":
                    break;
                case "--seed":
                    options.Seed = BenchText.Integer(arg, Next());
                    break;
                case "--json":
                    options.Json = BenchText.JsonTarget(args, ref i);
                    break;
                case "--no-build":
                    options.NoBuild = true;
                    break;
                case "--help" or "-h":
                    options.Help = true;
                    break;
                default:
                    throw new ArgumentException($"Unknown argument '{arg}'.");
            }
        }

        return options;
    }

    private static bool ValidName(string name) => name.Length > 0 && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_');
}
