
namespace EffServe.GatewayBench;

/// <summary>How throughput rounds use channels: one shared by all callers, one per caller, or both.</summary>
internal enum ChannelMode
{
    Both,
    Shared,
    PerCaller,

    /// <summary>No throughput windows: latency only (for quick experiments).</summary>
    None,
}

/// <summary>An extra gateway process started with more settings, measured as an arm of its own.</summary>
/// <param name="Name">Short name; the arm is called gateway:NAME.</param>
/// <param name="Arguments">Extra command-line settings (--Key=Value).</param>
/// <param name="Environment">Extra environment variables (NAME=VALUE).</param>
internal sealed record GatewayVariant(string Name, IReadOnlyList<string> Arguments, IReadOnlyDictionary<string, string> Environment);

/// <summary>What the program measures: the hop against nginx (no verb), or the gateway under overload.</summary>
internal enum BenchVerb
{
    Hop,
    Overload,
}

/// <summary>The benchmark's command line (both verbs).</summary>
internal sealed class BenchOptions
{
    public const string OverloadVerb = "overload";

    public const string Usage = """
        EffServe.GatewayBench: the gateway's hop against nginx grpc_pass, same inference service, one run.

          dotnet tests/perf/EffServe.GatewayBench/bin/Release/net10.0/EffServe.GatewayBench.dll [options]

          --rounds N          interleaved rounds (default 10)
          --requests N        requests per arm per latency round, one in flight (default 300)
          --seconds S         seconds per arm per throughput window (default 1.5)
          --callers N         concurrent callers in throughput windows (default 16)
          --channels MODE     throughput channels: both | shared | per-caller | none (default both;
                              none skips throughput, for quick latency experiments)
          --seed N            seed of arm order and sample choice (default 20261125)
          --json [PATH]       write the results as JSON to PATH, or to stdout instead of markdown
          --gateway-variant "NAME=--Key=Value ENV_VAR=value ..."
                              also measure another gateway process with these settings (repeatable);
                              tokens starting with -- are arguments, NAME=VALUE tokens are environment
          --bare-yarp         also measure a bare YARP forwarder (this program, `serve-yarp` mode)
          --tcp-pump          also measure a plain TCP relay on .NET sockets (this program, `serve-pump`
                              mode): the floor of any relay written on .NET here
          --yarp-variant "NAME=--inline|--buffer|--peek|--wrap ENV_VAR=value ..."
                              also measure a bare YARP forwarder with switches (repeatable):
                              --inline: Kestrel's UnsafePreferInlineScheduling; --buffer: read the
                              request into a MemoryStream first, as the gateway's unary path does;
                              --peek: read the first gRPC frame first; --wrap: a pass-through stream
          --header-arm        also measure the gateway with the effserve-model header (no peeking)
          --model NAME        the zoo model the service serves (default digits)
          --no-build          fail instead of building missing service binaries
          --help              this text

        Progress goes to stderr; the markdown table (or JSON) to stdout.

        EffServe.GatewayBench overload: the gateway and the service under open-loop Poisson load at
        multiples of the capacity measured through the gateway; goodput, answers by gRPC status,
        latency, memory and CPU of each process per step.

          dotnet tests/perf/EffServe.GatewayBench/bin/Release/net10.0/EffServe.GatewayBench.dll overload [options]

          --model NAME        the zoo model the service serves (default shapes)
          --seconds S         seconds per load step (default 30; 5 with --quick)
          --factors F,F,...   offered rates as multiples of the capacity (default 1,1.5,2)
          --deadline-ms MS    gRPC deadline of every call, from its scheduled send time (default 1000)
          --capacity N        take the capacity as N answers/s instead of measuring it
          --capacity-seconds S  seconds per closed-loop capacity window (default 10; 3 with --quick)
          --callers N,N,...   closed-loop callers tried for the capacity, the best taken (default 8,16)
          --connections N     gRPC channels the load is spread over, calls round-robined (default 4)
          --seed N            seed of the arrival trace and the sample choice (default 20261125)
          --quick             a smoke run: 5 s steps, 3 s capacity windows, at most 10 warm-up windows
          --out DIR           where results.md and results.json go (default artifacts/bench-overload)
          --json [PATH]       write the results as JSON to PATH too, or to stdout instead of the table
          --no-build          fail instead of building missing service binaries
          --help              this text

        Progress goes to stderr; the table and the targets to stdout.
        """;

    // Options that belong to one verb only; the rest (--seconds, --seed, --model, --json,
    // --no-build, --help) serve both.
    private static readonly HashSet<string> s_hopOnly = new(StringComparer.Ordinal)
    {
        "--rounds", "--requests", "--channels", "--gateway-variant", "--yarp-variant", "--bare-yarp", "--tcp-pump", "--header-arm",
    };

    private static readonly HashSet<string> s_overloadOnly = new(StringComparer.Ordinal)
    {
        "--factors", "--deadline-ms", "--capacity", "--capacity-seconds", "--connections", "--quick", "--out",
    };

    private double? _seconds;
    private double? _capacitySeconds;
    private string? _model;

    public BenchVerb Verb { get; private set; } = BenchVerb.Hop;

    public int Rounds { get; private set; } = 10;

    public int Requests { get; private set; } = 300;

    /// <summary>Seconds per throughput window (hop) or per load step (overload).</summary>
    public double Seconds => _seconds ?? Verb switch
    {
        BenchVerb.Overload => Quick ? 5 : 30,
        _ => 1.5,
    };

    public int Callers { get; private set; } = 16;

    /// <summary>The zoo model the service serves.</summary>
    public string Model => _model ?? (Verb == BenchVerb.Overload ? "shapes" : "digits");

    /// <summary>Overload: offered rates as multiples of the capacity, in the order run.</summary>
    public IReadOnlyList<double> Factors { get; private set; } = [1, 1.5, 2];

    /// <summary>Overload: the deadline of every call, from its scheduled send time.</summary>
    public double DeadlineMs { get; private set; } = 1000;

    /// <summary>Overload: the capacity given on the command line (answers/s); null to measure it.</summary>
    public double? Capacity { get; private set; }

    /// <summary>Overload: seconds per closed-loop capacity window.</summary>
    public double CapacitySeconds => _capacitySeconds ?? (Quick ? 3 : 10);

    /// <summary>Overload: the closed-loop caller counts tried for the capacity.</summary>
    public IReadOnlyList<int> CapacityCallers { get; private set; } = [8, 16];

    /// <summary>Overload: gRPC channels (HTTP/2 connection pools) the load is spread over.</summary>
    public int Connections { get; private set; } = 4;

    public bool Quick { get; private set; }

    /// <summary>Overload: the folder of results.md and results.json; null for artifacts/bench-overload.</summary>
    public string? Out { get; private set; }

    public ChannelMode Channels { get; private set; } = ChannelMode.Both;

    public int Seed { get; private set; } = 20261125;

    /// <summary>Null: no JSON; "-": JSON on stdout instead of markdown; otherwise a file.</summary>
    public string? Json { get; private set; }

    public List<GatewayVariant> Variants { get; } = [];

    public List<GatewayVariant> YarpVariants { get; } = [];

    public bool BareYarp { get; private set; }

    public bool TcpPump { get; private set; }

    public bool HeaderArm { get; private set; }

    public bool NoBuild { get; private set; }

    public bool Help { get; private set; }

    public static BenchOptions Parse(IReadOnlyList<string> args)
    {
        var options = new BenchOptions();
        var first = 0;
        if (args.Count > 0 && args[0] == OverloadVerb)
        {
            options.Verb = BenchVerb.Overload;
            first = 1;
        }

        for (var i = first; i < args.Count; i++)
        {
            var arg = args[i];
            string Next() => i + 1 < args.Count ? args[++i] : throw new ArgumentException($"{arg} needs a value.");
            if ((options.Verb == BenchVerb.Overload ? s_hopOnly : s_overloadOnly).Contains(arg))
            {
                throw new ArgumentException(options.Verb == BenchVerb.Overload
                    ? $"{arg} is an option of the hop benchmark, not of {OverloadVerb}."
                    : $"{arg} is an option of {OverloadVerb} (EffServe.GatewayBench {OverloadVerb} {arg} ...).");
            }

            switch (arg)
            {
                case "--rounds":
                    options.Rounds = BenchText.PositiveInt(arg, Next());
                    break;
                case "--requests":
                    options.Requests = BenchText.PositiveInt(arg, Next());
                    break;
                case "--seconds":
                    options._seconds = BenchText.PositiveNumber(arg, Next());
                    break;
                case "--model":
                    var model = Next();
                    options._model = model.Length > 0 && model.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.')
                        ? model
                        : throw new ArgumentException($"--model names a model of the zoo (letters, digits, '-', '_', '.'), not '{model}'.");
                    break;
                case "--factors":
                    options.Factors = [.. List(arg, Next()).Select(f => BenchText.PositiveNumber(arg, f))];
                    break;
                case "--deadline-ms":
                    options.DeadlineMs = BenchText.PositiveNumber(arg, Next());
                    break;
                case "--capacity":
                    options.Capacity = BenchText.PositiveNumber(arg, Next());
                    break;
                case "--capacity-seconds":
                    options._capacitySeconds = BenchText.PositiveNumber(arg, Next());
                    break;
                case "--connections":
                    options.Connections = BenchText.PositiveInt(arg, Next());
                    break;
                case "--quick":
                    options.Quick = true;
                    break;
                case "--out":
                    options.Out = Next();
                    break;
                case "--callers" when options.Verb == BenchVerb.Overload:
                    options.CapacityCallers = [.. List(arg, Next()).Select(n => BenchText.PositiveInt(arg, n))];
                    break;
                case "--callers":
                    options.Callers = BenchText.PositiveInt(arg, Next());
                    break;
                case "--channels":
                    var mode = Next();
                    options.Channels = mode switch
                    {
                        "both" => ChannelMode.Both,
                        "shared" => ChannelMode.Shared,
                        "per-caller" => ChannelMode.PerCaller,
                        "none" => ChannelMode.None,
                        _ => throw new ArgumentException($"--channels is both, shared, per-caller or none, not '{mode}'."),
                    };
                    break;
                case "--seed":
                    options.Seed = BenchText.Integer(arg, Next());
                    break;
                case "--json":
                    options.Json = BenchText.JsonTarget(args, ref i);
                    break;
                case "--gateway-variant":
                    options.Variants.Add(ParseVariant(Next()));
                    break;
                case "--yarp-variant":
                    options.YarpVariants.Add(ParseVariant(Next()));
                    break;
                case "--bare-yarp":
                    options.BareYarp = true;
                    break;
                case "--tcp-pump":
                    options.TcpPump = true;
                    break;
                case "--header-arm":
                    options.HeaderArm = true;
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

        if (options.Variants.Select(v => v.Name).Distinct(StringComparer.Ordinal).Count() != options.Variants.Count
            || options.YarpVariants.Select(v => v.Name).Distinct(StringComparer.Ordinal).Count() != options.YarpVariants.Count)
        {
            throw new ArgumentException("Two variants of the same kind have the same name.");
        }

        return options;
    }

    /// <summary>The items of a comma-separated value; at least one.</summary>
    private static string[] List(string name, string value)
    {
        var items = value.Split(',', StringSplitOptions.TrimEntries);
        return items.Length > 0 && items.All(i => i.Length > 0)
            ? items
            : throw new ArgumentException($"{name} is a comma-separated list, not '{value}'.");
    }

    private static GatewayVariant ParseVariant(string text)
    {
        var equals = text.IndexOf('=', StringComparison.Ordinal);
        if (equals <= 0)
        {
            throw new ArgumentException($"--gateway-variant is \"NAME=--Key=Value ...\", not '{text}'.");
        }

        var name = text[..equals];
        if (!name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))
        {
            throw new ArgumentException($"A variant name holds letters, digits, '-', '_' or '.', not '{name}'.");
        }

        var arguments = new List<string>();
        var environment = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var token in text[(equals + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (token.StartsWith("--", StringComparison.Ordinal))
            {
                arguments.Add(token);
            }
            else if (token.IndexOf('=', StringComparison.Ordinal) is > 0 and var at)
            {
                environment[token[..at]] = token[(at + 1)..];
            }
            else
            {
                throw new ArgumentException($"Variant '{name}': '{token}' is neither --Key=Value nor NAME=VALUE.");
            }
        }

        return new GatewayVariant(name, arguments, environment);
    }
}
