using System.CommandLine;
using System.Globalization;
using EffServe.Cli.Connection;
using EffServe.Cli.Listing;
using EffServe.Cli.Output;
using Spectre.Console;

namespace EffServe.Cli.Commands;

/// <summary>
/// <c>effserve models</c>: the models any OIP endpoint serves, with their variants where the
/// endpoint is EffServe.
/// </summary>
public static class ModelsCommand
{
    public static Command Create(CliContext context, GlobalOptions globals)
    {
        var jsonOption = GlobalOptions.CreateJson();
        var command = new Command("models", "List the models an endpoint serves, with their tensors and variants") { jsonOption };
        command.SetAction((parse, cancellationToken) =>
        {
            var json = parse.GetValue(jsonOption);
            return CommandRunner.RunAsync(context, globals, parse, json, session => ExecuteAsync(context, session, json), cancellationToken);
        });
        return command;
    }

    /// <summary>Lists the models and writes them as a table, or as JSON.</summary>
    public static async Task<int> ExecuteAsync(CliContext context, GrpcSession session, bool json)
    {
        var listing = await new ModelCatalog(session.Invoker, session.NewCallOptions).ListAsync().ConfigureAwait(false);
        if (json)
        {
            CliJson.Write(context.Out, new ModelsReport(Endpoint.Display(session.Endpoint), listing.Source, listing.Models));
        }
        else
        {
            Render(context.Console, session.Endpoint, listing);
        }

        return ExitCodes.Success;
    }

    /// <summary>
    /// Writes the listing: one table of models (name, version, readiness, tensors), then, where the
    /// endpoint reports them, one table of each model's variants.
    /// </summary>
    public static void Render(IAnsiConsole console, Uri endpoint, ModelListing listing)
    {
        var via = listing.Source == ListingSources.Zoo ? "ZooService.ListModels" : "RepositoryIndex + ModelMetadata";
        var address = Markup.Escape(Endpoint.Display(endpoint));
        if (listing.Models.Count == 0)
        {
            console.MarkupLine($"No models at {address} [grey](via {via})[/].");
            return;
        }

        var count = listing.Models.Count;
        console.MarkupLine(string.Create(CultureInfo.InvariantCulture, $"{count} model{(count == 1 ? "" : "s")} at {address} [grey](via {via})[/]"));
        var table = new Table().Border(TableBorder.Rounded)
            .AddColumn("Model")
            .AddColumn("Version")
            .AddColumn("Ready")
            .AddColumn("Inputs")
            .AddColumn("Outputs");
        var showPlatform = listing.Models.Any(m => m.Platform is not null);
        if (showPlatform)
        {
            table.AddColumn("Platform");
        }

        foreach (var model in listing.Models)
        {
            var cells = new List<string>
            {
                "[bold]" + Markup.Escape(model.Name) + "[/]",
                Markup.Escape(model.Version.Length == 0 ? "-" : model.Version),
                DescribeReady(model),
                DescribeTensors(model.Inputs),
                DescribeTensors(model.Outputs),
            };
            if (showPlatform)
            {
                cells.Add(Markup.Escape(model.Platform ?? "-"));
            }

            table.AddRow(cells.ToArray());
        }

        console.Write(table);
        foreach (var model in listing.Models.Where(m => m.Variants is { Count: > 0 }))
        {
            console.WriteLine();
            console.MarkupLine("Variants of [bold]" + Markup.Escape(model.Name) + "[/]" + (model.Labels is { Count: > 0 } labels
                ? string.Create(CultureInfo.InvariantCulture, $" [grey]({labels.Count} labels)[/]")
                : ""));
            console.Write(VariantTable(model));
        }
    }

    /// <summary>
    /// One row per variant: kind, provider and state, the stages and exit threshold of early-exit
    /// variants, and the accuracy its profile measured.
    /// </summary>
    public static Table VariantTable(ModelInfo model)
    {
        var table = new Table().Border(TableBorder.Rounded)
            .AddColumn("Variant")
            .AddColumn("Kind")
            .AddColumn("Provider")
            .AddColumn("State")
            .AddColumn(new TableColumn("Stages").RightAligned())
            .AddColumn(new TableColumn("Exit at").RightAligned())
            .AddColumn(new TableColumn("Accuracy").RightAligned());

        foreach (var v in model.Variants ?? [])
        {
            var state = v.State switch
            {
                "LOADED" => "[green]LOADED[/]",
                "" => "[grey]?[/]",
                _ => "[yellow]" + Markup.Escape(v.State) + "[/]",
            };
            if (v.Reason is { } reason)
            {
                state += "\n[grey]" + Markup.Escape(reason) + "[/]";
            }

            table.AddRow(
                "[bold]" + Markup.Escape(v.Name) + "[/]" + (v.Name == model.DefaultVariant ? " [grey](default)[/]" : ""),
                Markup.Escape(v.Kind),
                Markup.Escape(v.Provider),
                state,
                v.Stages.ToString(CultureInfo.InvariantCulture),
                v.ExitThreshold is { } threshold ? threshold.ToString("0.###", CultureInfo.InvariantCulture) : "-",
                v.Accuracy is { } accuracy ? string.Create(CultureInfo.InvariantCulture, $"{accuracy * 100:0.0}%") : "-");
        }

        return table;
    }

    private static string DescribeReady(ModelInfo model)
    {
        var text = model.Ready ? "[green]yes[/]" : "[red]no[/]";
        if (!model.Ready && model.State is { } state && state != "UNAVAILABLE")
        {
            text += " [grey](" + Markup.Escape(state) + ")[/]";
        }

        if (model.Reason is { } reason)
        {
            text += "\n[grey]" + Markup.Escape(reason) + "[/]";
        }

        return text;
    }

    private static string DescribeTensors(IReadOnlyList<TensorInfo> tensors) => tensors.Count == 0
        ? "[grey]-[/]"
        : string.Join('\n', tensors.Select(t => Markup.Escape($"{t.Name} {t.Datatype} {Core.Tensors.Shapes.Format(t.Shape)}")));
}
