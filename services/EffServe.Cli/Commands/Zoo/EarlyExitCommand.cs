using System.CommandLine;
using System.Globalization;
using EffServe.Core.Zoo;
using EffServe.Zoo.EarlyExit;
using Spectre.Console;

namespace EffServe.Cli.Commands.Zoo;

/// <summary>
/// <c>effserve zoo early-exit</c>: cuts a model with several exit outputs into stage models at
/// named feature tensors, checks that the chain reproduces the model's exits, and adds it as an
/// early-exit variant.
/// </summary>
public static class EarlyExitCommand
{
    public static Command Create(CliContext context)
    {
        var zoo = ZooOptions.Zoo();
        var model = ZooOptions.Model();
        var from = ZooOptions.From();
        var cut = new Option<string[]>("--cut")
        {
            Description = "Feature tensors to cut at, in order, comma-separated; tensor=name renames one in the stage models",
            HelpName = "tensors",
            Required = true,
        };
        var exits = new Option<string[]>("--exits") { Description = "Exit outputs, one per stage, comma-separated; the last is the model's output [default: the graph's other outputs in order, then the model's]", HelpName = "outputs" };
        var name = new Option<string>("--name") { Description = "Name (and folder) of the new variant", DefaultValueFactory = _ => "early-exit", HelpName = "variant" };
        var threshold = new Option<double>("--threshold") { Description = "The variant's default exit threshold", DefaultValueFactory = _ => ZooLoader.DefaultExitThreshold, HelpName = "t" };
        var samples = ZooOptions.Samples("Samples for the check [default: the evaluation set, else 32 random inputs]");
        var force = ZooOptions.Force();
        var json = GlobalOptions.CreateJson();
        var command = new Command("early-exit", "Cut a multi-exit model into stage models and add them as an early-exit variant")
        {
            zoo, model, from, cut, exits, name, threshold, samples, force, json,
        };
        command.SetAction((parse, cancellationToken) =>
        {
            var asJson = parse.GetValue(json);
            var exitList = ZooOptions.SplitList(parse.GetValue(exits));
            var request = new EarlyExitRequest(
                ZooOptions.ResolveZoo(context, parse.GetValue(zoo)),
                parse.GetRequiredValue(model),
                ZooOptions.SplitList(parse.GetValue(cut)).Select(StageCut.Parse).ToList())
            {
                Exits = exitList.Count == 0 ? null : exitList,
                From = parse.GetValue(from)!,
                Name = parse.GetValue(name)!,
                Threshold = parse.GetValue(threshold),
                Samples = parse.GetValue(samples),
                Replace = parse.GetValue(force),
            };
            var code = ZooCommandRunner.Run(context, asJson,
                (progress, token) => EarlyExitTool.Run(request, progress, token),
                result => Render(context.Console, request, result),
                result => ZooCommandRunner.WriteJson(context, ToReport(request, result), ZooJsonContext.Default.EarlyExitReport),
                cancellationToken);
            return Task.FromResult(code);
        });
        return command;
    }

    public static EarlyExitReport ToReport(EarlyExitRequest request, EarlyExitResult result) => new(
        result.Model.Name,
        request.Name,
        request.Threshold,
        result.Stages.Select(s => new StageReport(s.File, s.Exit, s.Inputs, s.Outputs, s.Nodes)).ToList(),
        result.Check.Source,
        result.Check.Samples,
        result.Check.MaxAbsDifference);

    private static void Render(IAnsiConsole console, EarlyExitRequest request, EarlyExitResult result)
    {
        console.MarkupLine($"Added variant [bold]{Markup.Escape(request.Name)}[/] (early-exit, cpu, threshold {request.Threshold.ToString(CultureInfo.InvariantCulture)}) to [bold]{Markup.Escape(result.Model.Name)}[/]");
        var table = new Table().Border(TableBorder.Rounded)
            .AddColumn("Stage").AddColumn("File").AddColumn("Reads").AddColumn("Writes").AddColumn(new TableColumn("Nodes").RightAligned())
            .AddColumn(new TableColumn("Max |diff| of exit").RightAligned());
        for (var k = 0; k < result.Stages.Count; k++)
        {
            var s = result.Stages[k];
            table.AddRow(
                (k + 1).ToString(CultureInfo.InvariantCulture),
                Markup.Escape(s.File),
                Markup.Escape(string.Join(", ", s.Inputs)),
                Markup.Escape(string.Join(", ", s.Outputs)),
                s.Nodes.ToString(CultureInfo.InvariantCulture),
                result.Check.MaxAbsDifference[s.Exit].ToString("G3", CultureInfo.InvariantCulture));
        }

        console.Write(table);
        console.MarkupLine(Markup.Escape(string.Create(CultureInfo.InvariantCulture, $"The chain reproduces every exit within {StageVerifier.Tolerance:G1} on {result.Check.Samples} samples ({result.Check.Source}).")));
    }
}
