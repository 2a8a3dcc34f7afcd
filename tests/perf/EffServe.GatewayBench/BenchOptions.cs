
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

/// <summary>The benchmark's command line.</summary>
internal sealed class BenchOptions
{
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
          --no-build          fail instead of building missing service binaries
          --help              this text

        Progress goes to stderr; the markdown table (or JSON) to stdout.
        """;

    public int Rounds { get; private set; } = 10;

    public int Requests { get; private set; } = 300;

    public double Seconds { get; private set; } = 1.5;

    public int Callers { get; private set; } = 16;

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
        for (var i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            string Next() => i + 1 < args.Count ? args[++i] : throw new ArgumentException($"{arg} needs a value.");
            switch (arg)
            {
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
