using System.CommandLine;
using System.Globalization;
using EffServe.Zoo;
using EffServe.Zoo.Import;
using Spectre.Console;

namespace EffServe.Cli.Commands.Zoo;

/// <summary>
/// <c>effserve zoo import MODEL.onnx</c>: a new zoo model from an FP32 ONNX file, with inputs and
/// outputs from the graph, one fp32 variant, and optionally labels and an evaluation set.
/// </summary>
public static class ImportCommand
{
    public static Command Create(CliContext context)
    {
        var file = new Argument<string>("model.onnx") { Description = "The FP32 ONNX model to import" };
        var zoo = ZooOptions.Zoo();
        var name = new Option<string?>("--name") { Description = "Model name in the zoo [default: the file's name]", HelpName = "name" };
        var labels = new Option<string?>("--labels") { Description = "Text file of class labels, one per line", HelpName = "file" };
        var evalInputs = new Option<string[]>("--eval-inputs")
        {
            Description = "Evaluation samples per model input, as input=file.npy (samples first)",
            HelpName = "input=file.npy",
            AllowMultipleArgumentsPerToken = true,
        };
        var evalLabels = new Option<string?>("--eval-labels") { Description = "Class index per evaluation sample (INT64 or INT32 .npy)", HelpName = "file.npy" };
        var maxBatch = new Option<int?>("--max-batch-size") { Description = "0 for no batch dimension [default: 64 when every input and output's first dimension is variable, else 0]", HelpName = "n" };
        var outputs = new Option<string[]>("--outputs") { Description = "Graph outputs the manifest declares, comma-separated [default: all]", HelpName = "names" };
        var task = new Option<string>("--task") { Description = "The manifest's task", DefaultValueFactory = _ => "classification", HelpName = "task" };
        var description = new Option<string?>("--description") { Description = "The manifest's description", HelpName = "text" };
        var force = ZooOptions.Force();
        var dropVariants = new Option<bool>("--drop-variants") { Description = "With --force: replace a model that has other variants (int8, fp16, early-exit…), dropping them" };
        var json = GlobalOptions.CreateJson();
        var command = new Command("import", "Add an FP32 ONNX model to a zoo (manifest from the graph, one fp32 variant)")
        {
            file, zoo, name, labels, evalInputs, evalLabels, maxBatch, outputs, task, description, force, dropVariants, json,
        };
        command.SetAction((parse, cancellationToken) =>
        {
            var asJson = parse.GetValue(json);
            var code = ZooCommandRunner.Run(context, asJson, (progress, _) =>
            {
                var pairs = new Dictionary<string, string>(StringComparer.Ordinal);
                foreach (var pair in ZooOptions.SplitList(parse.GetValue(evalInputs)))
                {
                    var at = pair.IndexOf('=', StringComparison.Ordinal);
                    if (at <= 0)
                    {
                        throw new ZooToolException(ZooToolError.InvalidArgument, $"--eval-inputs '{pair}' is not input=file.npy.");
                    }

                    pairs[pair[..at]] = ZooOptions.ResolvePath(context, pair[(at + 1)..]);
                }

                var request = new ImportRequest(ZooOptions.ResolvePath(context, parse.GetRequiredValue(file)), ZooOptions.ResolveZoo(context, parse.GetValue(zoo)))
                {
                    Name = parse.GetValue(name),
                    LabelsFile = parse.GetValue(labels) is { } l ? ZooOptions.ResolvePath(context, l) : null,
                    EvaluationInputs = pairs,
                    EvaluationLabels = parse.GetValue(evalLabels) is { } e ? ZooOptions.ResolvePath(context, e) : null,
                    MaxBatchSize = parse.GetValue(maxBatch),
                    Outputs = ZooOptions.SplitList(parse.GetValue(outputs)) is { Count: > 0 } o ? o : null,
                    Task = parse.GetValue(task)!,
                    Description = parse.GetValue(description),
                    Replace = parse.GetValue(force),
                    DropVariants = parse.GetValue(dropVariants),
                };
                return ModelImporter.Import(request, progress);
            },
            result => Render(context.Console, result),
            result => ZooCommandRunner.WriteJson(context, ToReport(result), ZooJsonContext.Default.ImportReport),
            cancellationToken);
            return Task.FromResult(code);
        });
        return command;
    }

    public static ImportReport ToReport(ImportResult result)
    {
        var m = result.Model;
        return new ImportReport(
            m.Name,
            m.Directory,
            m.Inputs.Select(TensorReport.From).ToList(),
            m.Outputs.Select(TensorReport.From).ToList(),
            m.MaxBatchSize,
            m.DefaultVariant,
            result.ModelFile,
            result.EvaluationSamples,
            m.Labels.Count,
            result.DroppedVariants);
    }

    private static void Render(IAnsiConsole console, ImportResult result)
    {
        var m = result.Model;
        console.MarkupLine($"Imported [bold]{Markup.Escape(m.Name)}[/] into {Markup.Escape(m.Directory)}");
        var table = new Table().Border(TableBorder.Rounded).AddColumn("").AddColumn("Tensor").AddColumn("Datatype").AddColumn("Shape");
        foreach (var (role, tensors) in new[] { ("input", m.Inputs), ("output", m.Outputs) })
        {
            foreach (var t in tensors)
            {
                table.AddRow(role, Markup.Escape(t.Name), t.DataType.ToString().ToUpperInvariant(), Markup.Escape(Core.Tensors.Shapes.Format(t.Shape)));
            }
        }

        console.Write(table);
        console.MarkupLine(string.Create(CultureInfo.InvariantCulture, $"max_batch_size {m.MaxBatchSize} · variant [bold]fp32[/] {Markup.Escape(result.ModelFile)}"));
        if (result.DroppedVariants.Count > 0)
        {
            console.MarkupLine("dropped variants [bold]" + Markup.Escape(string.Join(", ", result.DroppedVariants)) + "[/] of the replaced model");
        }

        console.MarkupLine(string.Create(CultureInfo.InvariantCulture, $"labels {(m.Labels.Count == 0 ? "none" : m.Labels.Count.ToString(CultureInfo.InvariantCulture))} · evaluation set {(result.EvaluationSamples is { } n ? $"{n} samples" : "none")}"));
    }
}
