using System.CommandLine;
using System.Globalization;
using EffServe.Core.Zoo;
using EffServe.Zoo.Fp16;
using Spectre.Console;

namespace EffServe.Cli.Commands.Zoo;

/// <summary>
/// <c>effserve zoo fp16</c>: an FP16 variant (FP16 weights and compute, FP32 inputs and outputs)
/// for GPUs, checked against the source on ONNX Runtime's CPU provider where it runs there.
/// </summary>
public static class Fp16Command
{
    public static Command Create(CliContext context)
    {
        var zoo = ZooOptions.Zoo();
        var model = ZooOptions.Model();
        var from = ZooOptions.From();
        var name = new Option<string>("--name") { Description = "Name (and folder) of the new variant", DefaultValueFactory = _ => "fp16", HelpName = "variant" };
        var keep = new Option<string[]>("--keep-fp32")
        {
            Description = $"Operators kept in FP32, comma-separated; 'default' stands for the default list, 'none' for none [default: {string.Join(",", Fp16Converter.DefaultKeepFp32)}]",
            HelpName = "ops",
        };
        var provider = new Option<string>("--provider") { Description = "Execution provider the variant is for", DefaultValueFactory = _ => "cuda", HelpName = "cuda|tensorrt|cpu" };
        provider.AcceptOnlyFromAmong("cuda", "tensorrt", "cpu");
        var samples = ZooOptions.Samples("Samples for the CPU check [default: the evaluation set, else 32 random inputs]");
        var force = ZooOptions.Force();
        var json = GlobalOptions.CreateJson();
        var command = new Command("fp16", "Add an FP16 variant (FP32 at the edges, a block list kept in FP32), for the CUDA provider by default")
        {
            zoo, model, from, name, keep, provider, samples, force, json,
        };
        command.SetAction((parse, cancellationToken) =>
        {
            var asJson = parse.GetValue(json);
            var chosen = parse.GetValue(provider) switch
            {
                "tensorrt" => ExecutionProvider.TensorRt,
                "cpu" => ExecutionProvider.Cpu,
                _ => ExecutionProvider.Cuda,
            };
            var request = new Fp16Request(ZooOptions.ResolveZoo(context, parse.GetValue(zoo)), parse.GetRequiredValue(model))
            {
                From = parse.GetValue(from)!,
                Name = parse.GetValue(name)!,
                KeepFp32 = KeepList(parse.GetValue(keep)),
                Provider = chosen,
                Samples = parse.GetValue(samples),
                Replace = parse.GetValue(force),
            };
            var code = ZooCommandRunner.Run(context, asJson,
                (progress, token) => Fp16Tool.Run(request, progress, token),
                result => Render(context.Console, request, result),
                result => ZooCommandRunner.WriteJson(context, ToReport(request, result), ZooJsonContext.Default.Fp16Report),
                cancellationToken);
            return Task.FromResult(code);
        });
        return command;
    }

    /// <summary>The block list from --keep-fp32: null for the default; 'default' expands to it, 'none' empties it.</summary>
    public static IReadOnlyList<string>? KeepList(string[]? values)
    {
        var list = ZooOptions.SplitList(values);
        if (list.Count == 0)
        {
            return null;
        }

        return list.Where(v => v != "none")
            .SelectMany(v => v == "default" ? Fp16Converter.DefaultKeepFp32 : [v])
            .Distinct(StringComparer.Ordinal)
            .ToList();
    }

    public static Fp16Report ToReport(Fp16Request request, Fp16Result result) => new(
        result.Model.Name,
        request.Name,
        result.File,
        request.Provider.ToManifestName(),
        result.KeptFp32,
        result.Summary.ConvertedInitializers,
        result.Summary.KeptInitializers,
        result.Summary.KeptNodes,
        result.Summary.Casts,
        result.Summary.ClampedValues,
        result.Summary.FlushedValues,
        result.CpuComparison is { } c ? ComparisonReport.From(c) : null,
        result.CpuSkipReason);

    private static void Render(IAnsiConsole console, Fp16Request request, Fp16Result result)
    {
        var s = result.Summary;
        console.MarkupLine($"Added variant [bold]{Markup.Escape(request.Name)}[/] (fp16, {request.Provider.ToManifestName()}) to [bold]{Markup.Escape(result.Model.Name)}[/]: {Markup.Escape(result.File)}");
        console.MarkupLine(Markup.Escape(string.Create(CultureInfo.InvariantCulture,
            $"FP16: {s.ConvertedInitializers} initializers and constants; FP32 kept: {s.KeptInitializers} initializers, nodes {(s.KeptNodes.Count == 0 ? "none" : string.Join(", ", s.KeptNodes.Select(kv => $"{kv.Value} {kv.Key}")))}; {s.Casts} casts; {s.ClampedValues} values clamped to ±65504, {s.FlushedValues} flushed to 0")));
        if (result.CpuComparison is { } c)
        {
            console.MarkupLine("Checked on ONNX Runtime's CPU provider (FP16 storage; FP32 arithmetic where the CPU has no FP16 kernel):");
            console.Write(QuantizeCommand.ComparisonTable(c, request.From, request.Name));
        }
        else
        {
            console.MarkupLine("[yellow]" + Markup.Escape("Not checked numerically: " + result.CpuSkipReason) + "[/]");
        }
    }
}
