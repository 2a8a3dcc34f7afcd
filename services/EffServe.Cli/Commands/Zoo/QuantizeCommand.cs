using System.CommandLine;
using System.Globalization;
using EffServe.Zoo.Data;
using EffServe.Zoo.Quantization;
using Spectre.Console;

namespace EffServe.Cli.Commands.Zoo;

/// <summary>
/// <c>effserve zoo quantize</c>: a static INT8 variant in QDQ form, calibrated on the model's
/// evaluation set, a given set or random inputs; reports what ONNX Runtime runs as integer kernels
/// and the accuracy against the source variant.
/// </summary>
public static class QuantizeCommand
{
    public static Command Create(CliContext context)
    {
        var zoo = ZooOptions.Zoo();
        var model = ZooOptions.Model();
        var from = ZooOptions.From();
        var name = new Option<string>("--name") { Description = "Name (and folder) of the new variant", DefaultValueFactory = _ => "int8", HelpName = "variant" };
        var calibration = new Option<string>("--calibration")
        {
            Description = "Calibration samples: eval (the model's evaluation set), random (seeded normal inputs), a .npy file, or input=file.npy pairs",
            DefaultValueFactory = _ => SampleSources.Evaluation,
            HelpName = "eval|random|file.npy",
        };
        var method = new Option<string>("--method") { Description = "How ranges are chosen", DefaultValueFactory = _ => "minmax", HelpName = "minmax|percentile|entropy" };
        method.AcceptOnlyFromAmong("minmax", "percentile", "entropy");
        var percentile = new Option<double>("--percentile") { Description = "Percentile kept on each side (with --method percentile)", DefaultValueFactory = _ => 99.99, HelpName = "p" };
        var samples = ZooOptions.Samples("Calibration samples to use [default: all; 32 with random]");
        var seed = new Option<int>("--seed") { Description = "Seed of random calibration inputs", DefaultValueFactory = _ => 0, HelpName = "n" };
        var force = ZooOptions.Force();
        var json = GlobalOptions.CreateJson();
        var command = new Command("quantize", "Add a static INT8 (QDQ) variant for ONNX Runtime's CPU integer kernels")
        {
            zoo, model, from, name, calibration, method, percentile, samples, seed, force, json,
        };
        command.SetAction((parse, cancellationToken) =>
        {
            var asJson = parse.GetValue(json);
            var request = new QuantizeRequest(ZooOptions.ResolveZoo(context, parse.GetValue(zoo)), parse.GetRequiredValue(model))
            {
                From = parse.GetValue(from)!,
                Name = parse.GetValue(name)!,
                Calibration = parse.GetValue(calibration) is { } c && c != SampleSources.Evaluation && c != SampleSources.Random ? ResolveFiles(context, c) : parse.GetValue(calibration)!,
                Method = parse.GetValue(method) switch
                {
                    "percentile" => CalibrationMethod.Percentile,
                    "entropy" => CalibrationMethod.Entropy,
                    _ => CalibrationMethod.MinMax,
                },
                Percentile = parse.GetValue(percentile),
                Samples = parse.GetValue(samples),
                Seed = parse.GetValue(seed),
                Replace = parse.GetValue(force),
            };
            var code = ZooCommandRunner.Run(context, asJson,
                (progress, token) => QuantizeTool.Run(request, progress, token),
                result => Render(context.Console, request, result),
                result => ZooCommandRunner.WriteJson(context, ToReport(request, result), ZooJsonContext.Default.QuantizeReport),
                cancellationToken);
            return Task.FromResult(code);
        });
        return command;
    }

    public static QuantizeReport ToReport(QuantizeRequest request, QuantizeResult result) => new(
        result.Model.Name,
        request.Name,
        result.File,
        request.Method.ToString().ToLowerInvariant(),
        request.Method == CalibrationMethod.Percentile ? request.Percentile : null,
        result.CalibrationSource,
        result.CalibrationSamples,
        result.Summary.QuantizedNodes,
        result.Summary.QuantizedTensors,
        result.Summary.FoldedActivations,
        result.Summary.FloatOperators,
        result.Kernels.Integer,
        result.Kernels.FloatCompute,
        ComparisonReport.From(result.Comparison));

    /// <summary>File paths in a --calibration value, against the working directory.</summary>
    private static string ResolveFiles(CliContext context, string value) => string.Join(',', value.Split(',').Select(part =>
    {
        var at = part.IndexOf('=', StringComparison.Ordinal);
        return at < 0 ? ZooOptions.ResolvePath(context, part.Trim()) : part[..(at + 1)] + ZooOptions.ResolvePath(context, part[(at + 1)..].Trim());
    }));

    private static void Render(IAnsiConsole console, QuantizeRequest request, QuantizeResult result)
    {
        var s = result.Summary;
        console.MarkupLine($"Added variant [bold]{Markup.Escape(request.Name)}[/] (int8, cpu) to [bold]{Markup.Escape(result.Model.Name)}[/]: {Markup.Escape(result.File)}");
        console.MarkupLine(Markup.Escape(string.Create(CultureInfo.InvariantCulture, $"Calibration: {request.Method.ToString().ToLowerInvariant()} on {result.CalibrationSamples} samples ({result.CalibrationSource})")));
        console.MarkupLine(Markup.Escape(string.Create(CultureInfo.InvariantCulture,
            $"Quantized: {Describe(s.QuantizedNodes)}; {s.QuantizedTensors} activations, {s.FoldedActivations} Relu/Clip folded; FP32: {(s.FloatOperators.Count == 0 ? "none" : string.Join(", ", s.FloatOperators))}")));
        var integer = result.Kernels.Integer;
        var floats = result.Kernels.FloatCompute;
        console.MarkupLine((floats.Count == 0 ? "[green]" : "[yellow]") + Markup.Escape(
            $"ONNX Runtime runs: {(integer.Count == 0 ? "no integer kernels" : Describe(integer))}{(floats.Count == 0 ? "; no FP32 convolutions or matrix products" : "; FP32 still: " + Describe(floats))}") + "[/]");
        console.Write(ComparisonTable(result.Comparison, request.From, request.Name));
    }

    internal static Table ComparisonTable(OutputComparison c, string reference, string converted)
    {
        var table = new Table().Border(TableBorder.Rounded)
            .AddColumn($"Output '{Markup.Escape(c.Output)}' on {c.Samples} samples")
            .AddColumn(new TableColumn(Markup.Escape(reference)).RightAligned())
            .AddColumn(new TableColumn(Markup.Escape(converted)).RightAligned());
        if (c.ReferenceAccuracy is { } a && c.CandidateAccuracy is { } b)
        {
            table.AddRow("top-1 accuracy", Percent(a), Percent(b) + Markup.Escape(string.Create(CultureInfo.InvariantCulture, $" ({(b - a) * 100:+0.00;-0.00;0.00} points)")));
        }

        table.AddRow("top-1 agreement", "", Percent(c.TopClassAgreement));
        table.AddRow("max |difference|", "", string.Create(CultureInfo.InvariantCulture, $"{c.MaxAbsDifference:G3} (outputs up to {c.MaxAbsReference:G3})"));
        return table;
    }

    private static string Percent(double value) => string.Create(CultureInfo.InvariantCulture, $"{value * 100:0.00}%");

    private static string Describe(IReadOnlyDictionary<string, int> counts) =>
        string.Join(", ", counts.Select(kv => string.Create(CultureInfo.InvariantCulture, $"{kv.Value} {kv.Key}")));
}
