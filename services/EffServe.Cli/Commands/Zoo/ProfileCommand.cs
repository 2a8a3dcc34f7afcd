using System.CommandLine;
using System.Globalization;
using System.Text.Json.Serialization;
using EffServe.Zoo;
using EffServe.Zoo.Profiling;
using Spectre.Console;

namespace EffServe.Cli.Commands.Zoo;

/// <summary>
/// <c>effserve zoo profile</c>: measures every variant of a zoo model on this machine (latency per
/// batch size, accuracy on the evaluation set, the early-exit threshold grid) and writes the
/// profiles into the model's manifest.
/// </summary>
public static class ProfileCommand
{
    public const double DefaultSeconds = 0.5;

    /// <summary>The `profile` command with its options and action; it works on a local zoo folder and needs no endpoint.</summary>
    public static Command Create(CliContext context)
    {
        var zoo = ZooOptions.Zoo();
        var model = ZooOptions.Model();
        var variant = new Option<string[]>("--variant") { Description = "Variant to profile; repeat or separate with commas [default: every variant]", HelpName = "name" };
        var batchSizes = new Option<string[]>("--batch-sizes")
        {
            Description = "Batch sizes to time, comma-separated [default: 1,2,4,8,16,32 up to the model's max_batch_size]",
            HelpName = "n,n,...",
        };
        var thresholds = new Option<string[]>("--thresholds")
        {
            Description = "Early-exit thresholds to measure, comma-separated [default: 0,0.5,0.7,0.8,0.9,0.95,0.98,0.99,0.995,0.999,1]",
            HelpName = "t,t,...",
        };
        var threads = new Option<int>("--threads")
        {
            Description = "ONNX Runtime intra-op threads per run, as the service's EffServe:Onnx:IntraOpThreads; 0 lets ONNX Runtime choose",
            HelpName = "n",
            DefaultValueFactory = _ => 1,
        };
        var seconds = new Option<double>("--seconds") { Description = "Timed seconds per batch size, after warm-up", HelpName = "s", DefaultValueFactory = _ => DefaultSeconds };
        seconds.Validators.Add(r =>
        {
            var value = r.GetValueOrDefault<double>();
            if (value < 0 || !double.IsFinite(value))
            {
                r.AddError("--seconds must be 0 or more.");
            }
        });
        var dryRun = new Option<bool>("--dry-run") { Description = "Measure and show the profile, but leave the manifest as it is" };
        var json = GlobalOptions.CreateJson();
        var command = new Command("profile", "Measure a model's variants on this machine (latency, accuracy, early-exit thresholds) and write the profiles into its model.yaml")
        {
            zoo, model, variant, batchSizes, thresholds, threads, seconds, dryRun, json,
        };
        command.SetAction((parse, cancellationToken) =>
        {
            var asJson = parse.GetValue(json);
            var code = ZooCommandRunner.Run(context, asJson,
                (progress, token) =>
                {
                    var request = new ProfileRequest(ZooOptions.ResolveZoo(context, parse.GetValue(zoo)), parse.GetRequiredValue(model))
                    {
                        Variants = ZooOptions.SplitList(parse.GetValue(variant)),
                        BatchSizes = ParseList<int>(parse.GetValue(batchSizes), "--batch-sizes", "a whole number", s => int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v : null),
                        Thresholds = ParseList<double>(parse.GetValue(thresholds), "--thresholds", "a number", s => double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? v : null),
                        IntraOpThreads = parse.GetValue(threads),
                        WriteManifest = !parse.GetValue(dryRun),
                        Measurement = new MeasurementSettings { MinTime = TimeSpan.FromSeconds(parse.GetValue(seconds)) },
                    };
                    return new ZooProfiler(context.Time).Profile(request, progress, token);
                },
                report => Render(context.Console, report),
                report => ZooCommandRunner.WriteJson(context, report, ProfileJsonContext.Default.ProfileReport),
                cancellationToken);
            return Task.FromResult(code);
        });
        return command;
    }

    /// <summary>
    /// The values of a list option (comma-separated, or the option repeated); null when it was not
    /// given, so that the profiler's defaults apply. Ranges are the profiler's to check.
    /// </summary>
    /// <exception cref="ZooToolException">An entry is not a number (InvalidArgument).</exception>
    public static List<T>? ParseList<T>(IEnumerable<string>? values, string option, string what, Func<string, T?> parse)
        where T : struct
    {
        var parts = ZooOptions.SplitList(values);
        if (parts.Count == 0)
        {
            return null;
        }

        return parts.Select(part => parse(part) ?? throw new ZooToolException(ZooToolError.InvalidArgument, $"{option}: '{part}' is not {what}.")).ToList();
    }

    /// <summary>Writes the report for people: per variant, its latency table, accuracy and threshold grid.</summary>
    public static void Render(IAnsiConsole console, ProfileReport report)
    {
        console.MarkupLine($"[bold]{Markup.Escape(report.Model)}[/] profiled on {Markup.Escape(report.Machine.Summary)} [grey]({Markup.Escape(report.MeasuredAt)})[/]");
        if (report.EvaluationSamples is { } samples)
        {
            console.MarkupLine(string.Create(CultureInfo.InvariantCulture, $"[grey]evaluation set: {samples} samples[/]"));
        }

        foreach (var variant in report.Variants)
        {
            console.WriteLine();
            var heading = $"[bold]{Markup.Escape(variant.Name)}[/] [grey]({Markup.Escape(variant.Kind)} on {Markup.Escape(variant.Provider)})[/]";
            if (variant.SkipReason is { } reason)
            {
                console.MarkupLine($"{heading} [yellow]skipped[/]: {Markup.Escape(reason)}");
                continue;
            }

            if (variant.Accuracy is { } accuracy)
            {
                heading += string.Create(CultureInfo.InvariantCulture, $" · accuracy {accuracy.Accuracy * 100:0.00}% ({accuracy.Correct}/{accuracy.Samples})");
            }

            console.MarkupLine(heading);
            console.Write(LatencyTable(variant));
            if (variant.Thresholds.Count > 0)
            {
                console.Write(ThresholdTable(variant));
            }

            foreach (var note in variant.Notes)
            {
                console.MarkupLine("[grey]" + Markup.Escape(note) + "[/]");
            }
        }

        console.WriteLine();
        foreach (var note in report.Notes)
        {
            console.MarkupLine("[yellow]note:[/] " + Markup.Escape(note));
        }

        var profiled = report.Variants.Count(v => v.Profiled);
        console.MarkupLine(report.Written
            ? string.Create(CultureInfo.InvariantCulture, $"Wrote {profiled} profile{(profiled == 1 ? "" : "s")} into [bold]{Markup.Escape(report.Manifest)}[/].")
            : $"Dry run: {Markup.Escape(report.Manifest)} is unchanged.");
    }

    private static Table LatencyTable(VariantReport variant)
    {
        var table = new Table().Border(TableBorder.Rounded)
            .AddColumn(new TableColumn("Batch").RightAligned())
            .AddColumn(new TableColumn("p50 ms").RightAligned())
            .AddColumn(new TableColumn("p95 ms").RightAligned())
            .AddColumn(new TableColumn("items/s").RightAligned())
            .AddColumn(new TableColumn("Runs").RightAligned());
        foreach (var l in variant.Latency)
        {
            table.AddRow(
                Invariant(l.BatchSize),
                Time(l.P50Ms),
                Time(l.P95Ms),
                ProfileNumbers.Format(ProfileNumbers.Time(l.ItemsPerSecond)),
                Invariant(l.Runs) + (l.Steady ? "" : " [yellow]unsteady[/]"));
        }

        return table;
    }

    private static Table ThresholdTable(VariantReport variant)
    {
        var batch = variant.Thresholds[0].BatchSize;
        var table = new Table().Border(TableBorder.Rounded)
            .AddColumn(new TableColumn("Threshold").RightAligned())
            .AddColumn(new TableColumn("Accuracy").RightAligned())
            .AddColumn(new TableColumn("Mean stages").RightAligned())
            .AddColumn(new TableColumn("Request ms").RightAligned())
            .AddColumn(new TableColumn("Item ms").RightAligned())
            .Caption(string.Create(CultureInfo.InvariantCulture, $"Request ms: mean of one-sample runs (the manifest's mean_latency_ms). Item ms: the set in batches of {batch}, per sample."));
        foreach (var t in variant.Thresholds)
        {
            table.AddRow(
                ProfileNumbers.Format(t.Threshold),
                string.Create(CultureInfo.InvariantCulture, $"{t.Accuracy * 100:0.00}%"),
                ProfileNumbers.Format(ProfileNumbers.Stages(t.MeanStages)),
                Time(t.MeanLatencyMs),
                Time(t.BatchedMsPerItem));
        }

        return table;
    }

    private static string Time(double milliseconds) => ProfileNumbers.Format(ProfileNumbers.Time(milliseconds));

    private static string Invariant(int value) => value.ToString(CultureInfo.InvariantCulture);
}

[JsonSourceGenerationOptions(
    WriteIndented = true,
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals)]
[JsonSerializable(typeof(ProfileReport))]
internal sealed partial class ProfileJsonContext : JsonSerializerContext;
