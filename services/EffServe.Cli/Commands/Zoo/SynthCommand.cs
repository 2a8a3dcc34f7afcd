using System.CommandLine;
using System.Globalization;
using EffServe.Zoo.Synth;
using Spectre.Console;

namespace EffServe.Cli.Commands.Zoo;

/// <summary>
/// <c>effserve zoo synth</c>: a structurally real classifier (MobileNetV2 or ResNet-18 shape at
/// 224×224) with seeded random weights, as a zoo model with an fp32 variant.
/// </summary>
public static class SynthCommand
{
    public static Command Create(CliContext context)
    {
        var zoo = ZooOptions.Zoo();
        var arch = new Option<string>("--arch") { Description = "Architecture", Required = true, HelpName = "mobilenetv2|resnet18" };
        arch.AcceptOnlyFromAmong("mobilenetv2", "resnet18");
        var name = new Option<string?>("--name") { Description = "Model name [default: the architecture's]", HelpName = "name" };
        var seed = new Option<int>("--seed") { Description = "Seed of the random weights", DefaultValueFactory = _ => 0, HelpName = "n" };
        var classes = new Option<int>("--classes") { Description = "Classifier outputs", DefaultValueFactory = _ => 1000, HelpName = "n" };
        var force = ZooOptions.Force();
        var json = GlobalOptions.CreateJson();
        var command = new Command("synth", "Add a synthetic MobileNetV2- or ResNet-18-shaped model with random weights (for benchmarks)")
        {
            zoo, arch, name, seed, classes, force, json,
        };
        command.SetAction((parse, cancellationToken) =>
        {
            var asJson = parse.GetValue(json);
            var request = new SynthRequest(
                ZooOptions.ResolveZoo(context, parse.GetValue(zoo)),
                parse.GetRequiredValue(arch) == "resnet18" ? SynthArchitecture.ResNet18 : SynthArchitecture.MobileNetV2)
            {
                Name = parse.GetValue(name),
                Seed = parse.GetValue(seed),
                Classes = parse.GetValue(classes),
                Replace = parse.GetValue(force),
            };
            var code = ZooCommandRunner.Run(context, asJson,
                (progress, _) => SynthTool.Run(request, progress),
                result => Render(context.Console, request, result),
                result => ZooCommandRunner.WriteJson(context, ToReport(request, result), ZooJsonContext.Default.SynthReport),
                cancellationToken);
            return Task.FromResult(code);
        });
        return command;
    }

    public static SynthReport ToReport(SynthRequest request, SynthResult result) => new(
        result.Model.Name,
        SynthTool.DefaultName(request.Architecture),
        result.File,
        result.FileBytes,
        request.Seed,
        request.Classes,
        SynthModels.Resolution,
        result.Parameters,
        result.MultiplyAccumulates,
        result.Flops);

    private static void Render(IAnsiConsole console, SynthRequest request, SynthResult result)
    {
        console.MarkupLine($"Added synthetic [bold]{Markup.Escape(result.Model.Name)}[/] ({request.Architecture}, seed {request.Seed}, {request.Classes} classes) to {Markup.Escape(result.Model.Directory)}");
        console.MarkupLine(Markup.Escape(string.Create(CultureInfo.InvariantCulture,
            $"{result.Parameters / 1e6:F2} M parameters · {result.MultiplyAccumulates / 1e9:F3} G multiply-accumulates = {result.Flops / 1e9:F3} GFLOPs per 224x224 sample · {result.FileBytes / 1048576.0:F1} MiB: {result.File}")));
    }
}
