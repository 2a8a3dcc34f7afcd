using System.CommandLine;
using System.Globalization;
using EffServe.Cli.Connection;
using EffServe.Cli.Inference;
using EffServe.Contracts.Inference;
using EffServe.LoadGen;
using Grpc.Net.Client;
using Spectre.Console;

namespace EffServe.Cli.Commands;

/// <summary>What <c>effserve bench</c> was asked to do, once the command line is parsed.</summary>
public sealed record BenchSettings(string Model)
{
    public required IReadOnlyList<double> Rates { get; init; }

    public double DurationSeconds { get; init; } = BenchCommand.DefaultDurationSeconds;

    public int Repeats { get; init; } = 1;

    public int Seed { get; init; } = BenchCommand.DefaultSeed;

    /// <summary>Class specs name:slo_ms[:weight[:min_accuracy[:priority]]]; empty for the mix file or the default mix.</summary>
    public IReadOnlyList<string> Classes { get; init; } = [];

    public string? MixFile { get; init; }

    /// <summary>Arms as name=endpoint; empty for one arm at --endpoint.</summary>
    public IReadOnlyList<string> Arms { get; init; } = [];

    /// <summary>Zoo folder as given (--zoo); null for EFFSERVE_ZOO or ./zoo.</summary>
    public string? Zoo { get; init; }

    public double GiveUpSeconds { get; init; } = BenchCommand.DefaultGiveUpSeconds;

    /// <summary>Use at most this many evaluation samples; 0 for all.</summary>
    public int Samples { get; init; }

    /// <summary>Folder for results.json, results.md and plot.png; null for none.</summary>
    public string? OutputFolder { get; init; }

    public bool Json { get; init; }
}

/// <summary>
/// <c>effserve bench</c>: open-loop Poisson load with a mix of SLO classes at one or more offered
/// rates against one or more endpoints (arms), samples from the model's evaluation set; reports SLO
/// attainment per class, goodput@99 and @90, accuracy delivered, variant mix, refusals by status
/// and latency percentiles, as tables, JSON, and files with a plot.
/// </summary>
public sealed class BenchCommand
{
    public const double DefaultDurationSeconds = 5;
    public const int DefaultSeed = 20261126;
    public const double DefaultGiveUpSeconds = 1;

    private readonly Option<string> _model = new("--model", "-m") { Description = "Model to load", Required = true, HelpName = "name" };
    private readonly Option<string> _rates = new("--rates", "-r") { Description = "Offered rates in requests per second, comma-separated (run in ascending order)", Required = true, HelpName = "r1,r2,..." };
    private readonly Option<double> _duration = new("--duration", "-d") { Description = "Seconds of traffic per rate and arm", DefaultValueFactory = _ => DefaultDurationSeconds, HelpName = "seconds" };
    private readonly Option<int> _repeats = new("--repeats") { Description = "Rounds over every rate and arm; figures are medians of repeats", DefaultValueFactory = _ => 1, HelpName = "n" };
    private readonly Option<int> _seed = new("--seed") { Description = "Seed of the trace: the same seed sends the same requests at the same times", DefaultValueFactory = _ => DefaultSeed, HelpName = "n" };
    private readonly Option<string[]> _class = new("--class", "-c") { Description = "An SLO class name:slo_ms[:weight[:min_accuracy[:priority]]] (repeat for a mix) [default: tight 5 ms ×0.3 priority 1, medium 15 ms ×0.5, loose 50 ms ×0.2]", HelpName = "spec", AllowMultipleArgumentsPerToken = false };
    private readonly Option<string?> _mix = new("--mix") { Description = "SLO classes from a JSON file: {\"classes\": [{\"name\", \"slo_ms\", \"weight\", \"min_accuracy\", \"priority\", \"timeout_us\"}]}", HelpName = "file.json" };
    private readonly Option<string[]> _arm = new("--arm") { Description = "Load this endpoint as a named arm, name=address (repeat to compare servers, interleaved) [default: --endpoint]", HelpName = "name=address" };
    private readonly Option<string?> _zoo = new("--zoo") { Description = $"Zoo folder with the model's evaluation set [default: ${EvalSet.EnvironmentVariable}, else ./{EvalSet.DefaultFolder}]", HelpName = "dir" };
    private readonly Option<double> _giveUp = new("--give-up") { Description = "Seconds after its scheduled send at which the client abandons a request (at least 4× its SLO); it counts as a miss", DefaultValueFactory = _ => DefaultGiveUpSeconds, HelpName = "seconds" };
    private readonly Option<int> _samples = new("--samples") { Description = "Use only the first N evaluation samples; 0 for all", DefaultValueFactory = _ => 0, HelpName = "n" };
    private readonly Option<string?> _out = new("--out", "-o") { Description = "Write results.json, results.md and plot.png into this folder", HelpName = "dir" };
    private readonly Option<bool> _json = GlobalOptions.CreateJson();

    private BenchCommand()
    {
    }

    /// <summary>The `bench` command with its options, validation and action.</summary>
    public static Command Create(CliContext context, GlobalOptions globals) => new BenchCommand().Build(context, globals);

    /// <summary>The offered rates in "r1,r2,..."; null when the text is not a list of positive numbers.</summary>
    public static double[]? ParseRates(string text)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries);
        var rates = new double[parts.Length];
        for (var i = 0; i < parts.Length; i++)
        {
            if (!double.TryParse(parts[i], NumberStyles.Float, CultureInfo.InvariantCulture, out rates[i]) || !(rates[i] > 0) || double.IsInfinity(rates[i]))
            {
                return null;
            }
        }

        return rates.Length > 0 ? rates : null;
    }

    /// <summary>Runs the sweep as <paramref name="settings"/> says and writes the results.</summary>
    public static async Task<int> ExecuteAsync(CliContext context, GrpcSession session, BenchSettings settings, CancellationToken cancellationToken)
    {
        var mix = ResolveMix(settings);
        var zoo = EvalSet.ResolveZoo(settings.Zoo, context.GetEnvironmentVariable, context.WorkingDirectory);
        Workload workload;
        try
        {
            workload = Workload.Load(zoo, settings.Model, mix, settings.Samples);
        }
        catch (LoadGenException e)
        {
            throw CliException.InvalidInput(e.Message, e);
        }

        var channels = new List<GrpcChannel>();
        try
        {
            var arms = new List<BenchArm>();
            foreach (var (name, endpoint) in ResolveArms(settings, session.Endpoint))
            {
                var invoker = session.Invoker;
                if (endpoint != session.Endpoint)
                {
                    var channel = context.ChannelFactory(endpoint);
                    channels.Add(channel);
                    invoker = channel.CreateCallInvoker();
                }

                // Fails fast with the server's own status (NOT_FOUND, UNAVAILABLE) before any load is sent.
                var client = new GRPCInferenceService.GRPCInferenceServiceClient(invoker);
                try
                {
                    await client.ModelMetadataAsync(new ModelMetadataRequest { Name = settings.Model }, session.NewCallOptions()).ConfigureAwait(false);
                }
                catch (Grpc.Core.RpcException e)
                {
                    throw new CliException(GrpcErrors.ExitCodeOf(e), $"arm '{name}': {GrpcErrors.Describe(e, endpoint)}", e);
                }

                arms.Add(new BenchArm(name, invoker));
            }

            var sweep = new SweepSettings
            {
                Rates = settings.Rates,
                DurationSeconds = settings.DurationSeconds,
                Repeats = settings.Repeats,
                Seed = settings.Seed,
                Run = new RunSettings { GiveUpAfter = TimeSpan.FromSeconds(settings.GiveUpSeconds) },
            };
            // A fresh server's first requests pay for JIT, ONNX Runtime's first runs and cold caches;
            // measured rates start only once each arm's latency has settled.
            var warmUps = new List<string>();
            foreach (var arm in arms)
            {
                var medians = await ClosedLoop.WarmUpAsync(arm.Invoker, workload, cancellationToken: cancellationToken).ConfigureAwait(false);
                var settled = medians.Count >= 3 && medians.TakeLast(3).Max() <= 1.1 * medians.TakeLast(3).Min();
                var line = string.Create(CultureInfo.InvariantCulture, $"warm-up {arm.Name}: {medians.Count} windows of 100 requests, {(settled ? "settled" : "NOT settled")} (medians {ClosedLoop.Describe(medians)})");
                warmUps.Add(line);
                context.Error.WriteLine(line);
            }

            var result = await Sweep.RunAsync(arms, workload, sweep, line => context.Error.WriteLine(line), cancellationToken).ConfigureAwait(false);
            var reportContext = new Dictionary<string, string>(StringComparer.Ordinal)
            {
                ["arms"] = string.Join("; ", ResolveArms(settings, session.Endpoint).Select(a => $"{a.Name}={Endpoint.Display(a.Endpoint)}")),
                ["zoo"] = zoo,
                ["warm-up"] = string.Join("; ", warmUps),
                ["machine"] = string.Create(CultureInfo.InvariantCulture, $"{Environment.ProcessorCount} cores, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}, .NET {Environment.Version}"),
            };
            if (settings.OutputFolder is { } folder)
            {
                var written = Reports.WriteAll(Path.GetFullPath(folder, context.WorkingDirectory), result, reportContext, settings.Model);
                context.Error.WriteLine("wrote " + string.Join(", ", written));
            }

            if (settings.Json)
            {
                context.Out.WriteLine(Reports.Json(result, reportContext));
            }
            else
            {
                // Markdown is plain text: written as it is, never wrapped to a console's width.
                context.Out.WriteLine(Reports.Markdown(result));
            }

            return ExitCodes.Success;
        }
        catch (LoadGenException e)
        {
            throw CliException.Usage(e.Message);
        }
        finally
        {
            foreach (var channel in channels)
            {
                channel.Dispose();
            }
        }
    }

    private static LoadMix ResolveMix(BenchSettings settings)
    {
        try
        {
            return settings.MixFile is { } file ? LoadMix.Load(file)
                : settings.Classes.Count > 0 ? LoadMix.ParseSpecs(settings.Classes)
                : LoadMix.Default;
        }
        catch (LoadGenException e)
        {
            throw settings.MixFile is null ? CliException.Usage(e.Message) : CliException.InvalidInput(e.Message, e);
        }
    }

    private static List<(string Name, Uri Endpoint)> ResolveArms(BenchSettings settings, Uri endpoint)
    {
        if (settings.Arms.Count == 0)
        {
            return [(Endpoint.Display(endpoint), endpoint)];
        }

        var arms = new List<(string Name, Uri Endpoint)>();
        foreach (var arm in settings.Arms)
        {
            var at = arm.IndexOf('=', StringComparison.Ordinal);
            if (at <= 0 || at == arm.Length - 1)
            {
                throw CliException.Usage($"--arm '{arm}' is not name=address, for example --arm fp32=localhost:8101.");
            }

            var name = arm[..at].Trim();
            if (arms.Any(a => a.Name == name))
            {
                throw CliException.Usage($"--arm '{name}' is given twice; give each arm its own name.");
            }

            arms.Add((name, Endpoint.Parse(arm[(at + 1)..], $"--arm {name}")));
        }

        return arms;
    }

    private Command Build(CliContext context, GlobalOptions globals)
    {
        var command = new Command("bench", "Open-loop load with a mix of SLO classes at rising rates: SLO attainment, goodput, accuracy delivered, variant mix")
        {
            _model, _rates, _duration, _repeats, _seed, _class, _mix, _arm, _zoo, _giveUp, _samples, _out, _json,
        };
        _rates.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<string>() is { } text && ParseRates(text) is null)
            {
                r.AddError($"--rates '{text}' must be positive numbers of requests per second, comma-separated (for example 200,400,800).");
            }
        });
        _duration.Validators.Add(r => Positive(r, "--duration", r.GetValueOrDefault<double>()));
        _giveUp.Validators.Add(r => Positive(r, "--give-up", r.GetValueOrDefault<double>()));
        _repeats.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int>() < 1)
            {
                r.AddError("--repeats must be 1 or more.");
            }
        });
        _samples.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int>() < 0)
            {
                r.AddError("--samples must be 0 (all) or more.");
            }
        });
        command.Validators.Add(result =>
        {
            if (result.GetResult(_class) is { Implicit: false } && result.GetResult(_mix) is { Implicit: false })
            {
                result.AddError("--class and --mix exclude each other: give the classes on the command line or in a file.");
            }
        });
        command.SetAction((parse, cancellationToken) =>
        {
            var settings = new BenchSettings(parse.GetRequiredValue(_model))
            {
                Rates = ParseRates(parse.GetRequiredValue(_rates))!,
                DurationSeconds = parse.GetValue(_duration),
                Repeats = parse.GetValue(_repeats),
                Seed = parse.GetValue(_seed),
                Classes = parse.GetValue(_class) ?? [],
                MixFile = parse.GetValue(_mix) is { } mix ? Path.GetFullPath(mix, context.WorkingDirectory) : null,
                Arms = parse.GetValue(_arm) ?? [],
                Zoo = parse.GetValue(_zoo),
                GiveUpSeconds = parse.GetValue(_giveUp),
                Samples = parse.GetValue(_samples),
                OutputFolder = parse.GetValue(_out),
                Json = parse.GetValue(_json),
            };
            return CommandRunner.RunAsync(context, globals, parse, settings.Json, session => ExecuteAsync(context, session, settings, cancellationToken), cancellationToken);
        });
        return command;
    }

    private static void Positive(System.CommandLine.Parsing.OptionResult result, string option, double value)
    {
        if (!(value > 0) || double.IsInfinity(value))
        {
            result.AddError($"{option} must be a positive number of seconds.");
        }
    }
}
