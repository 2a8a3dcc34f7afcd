using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using EffServe.Cli.Connection;
using EffServe.Cli.Inference;
using EffServe.Cli.Listing;
using EffServe.Cli.Output;
using EffServe.Contracts.Inference;
using EffServe.Core.EarlyExit;
using EffServe.Core.Protocol;
using EffServe.Core.Tensors;
using Google.Protobuf.Collections;
using Grpc.Core;
using Spectre.Console;

namespace EffServe.Cli.Commands;

/// <summary>What <c>effserve infer</c> was asked to do, once the command line is parsed.</summary>
public sealed record InferSettings(string Model)
{
    public string? Version { get; init; }

    /// <summary>Evaluation-set sample to send; exactly one of this and <see cref="InputFile"/>.</summary>
    public int? Sample { get; init; }

    /// <summary>.npy file to send.</summary>
    public string? InputFile { get; init; }

    /// <summary>Zoo folder as given (--zoo); null for EFFSERVE_ZOO or ./zoo.</summary>
    public string? Zoo { get; init; }

    public int TopK { get; init; } = InferCommand.DefaultTopK;

    public string? Variant { get; init; }

    public double? Threshold { get; init; }

    public TensorEncoding Encoding { get; init; } = TensorEncoding.Raw;

    public bool Json { get; init; }
}

/// <summary>
/// <c>effserve infer</c>: sends one evaluation sample or an .npy file to a model and prints the
/// most probable classes, what the server reports about the call, and the round-trip time.
/// </summary>
public sealed class InferCommand
{
    public const int DefaultTopK = 3;

    public const string VariantParameter = ParameterNames.Variant;
    public const string ExitThresholdParameter = ParameterNames.ExitThreshold;
    public const string ExitStageParameter = ParameterNames.ExitStage;
    public const string ExitStagesParameter = ParameterNames.ExitStages;
    public const string QueueParameter = ParameterNames.QueueUs;
    public const string ComputeParameter = ParameterNames.ComputeUs;
    public const string BatchSizeParameter = ParameterNames.BatchSize;

    private readonly Option<string> _model = new("--model", "-m") { Description = "Model to call", Required = true, HelpName = "name" };
    private readonly Option<string?> _version = new("--version") { Description = "Model version [default: the server's choice]", HelpName = "version" };
    private readonly Option<int?> _sample = new("--sample", "-s") { Description = "Send sample N of the model's evaluation set (from the local zoo folder)", HelpName = "index" };
    private readonly Option<string?> _input = new("--input", "-i") { Description = "Send this .npy array (a batch dimension of 1 is added when it lacks one)", HelpName = "file.npy" };
    private readonly Option<string?> _zoo = new("--zoo") { Description = $"Zoo folder for --sample [default: ${EvalSet.EnvironmentVariable}, else ./{EvalSet.DefaultFolder}]", HelpName = "dir" };
    private readonly Option<int> _topK = new("--top-k", "-k") { Description = "How many classes to show per sample", DefaultValueFactory = _ => DefaultTopK, HelpName = "k" };
    private readonly Option<string?> _variant = new("--variant") { Description = $"Pin a variant ({VariantParameter})", HelpName = "name" };
    private readonly Option<double?> _threshold = new("--threshold") { Description = $"Early-exit confidence threshold, 0 to 1 ({ExitThresholdParameter})", HelpName = "t" };
    private readonly Option<bool> _raw = new("--raw") { Description = "Send tensors as raw_input_contents (the default)" };
    private readonly Option<bool> _typed = new("--typed") { Description = "Send tensors in the typed contents fields (fp32_contents ...)" };
    private readonly Option<bool> _json = GlobalOptions.CreateJson();

    private InferCommand()
    {
    }

    /// <summary>The `infer` command with its options, validation and action.</summary>
    public static Command Create(CliContext context, GlobalOptions globals) => new InferCommand().Build(context, globals);

    private Command Build(CliContext context, GlobalOptions globals)
    {
        var command = new Command("infer", "Classify one evaluation sample or an .npy file and show the top classes")
        {
            _model, _version, _sample, _input, _zoo, _topK, _variant, _threshold, _raw, _typed, _json,
        };
        command.Validators.Add(Validate);
        _sample.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int?>() is < 0)
            {
                r.AddError("--sample must be 0 or more.");
            }
        });
        _topK.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int>() < 1)
            {
                r.AddError("--top-k must be 1 or more.");
            }
        });
        _threshold.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<double?>() is { } t && !ExitRule.IsValidThreshold(t))
            {
                r.AddError("--threshold must lie in [0, 1].");
            }
        });
        command.SetAction((parse, cancellationToken) =>
        {
            var settings = new InferSettings(parse.GetRequiredValue(_model))
            {
                Version = parse.GetValue(_version),
                Sample = parse.GetValue(_sample),
                InputFile = parse.GetValue(_input),
                Zoo = parse.GetValue(_zoo),
                TopK = parse.GetValue(_topK),
                Variant = parse.GetValue(_variant),
                Threshold = parse.GetValue(_threshold),
                Encoding = parse.GetValue(_typed) ? TensorEncoding.Typed : TensorEncoding.Raw,
                Json = parse.GetValue(_json),
            };
            return CommandRunner.RunAsync(context, globals, parse, settings.Json, session => ExecuteAsync(context, session, settings), cancellationToken);
        });
        return command;
    }

    /// <summary>Runs one inference as <paramref name="settings"/> says and writes the result.</summary>
    public static async Task<int> ExecuteAsync(CliContext context, GrpcSession session, InferSettings settings)
    {
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(session.Invoker);
        var metadata = await client.ModelMetadataAsync(
            new ModelMetadataRequest { Name = settings.Model, Version = settings.Version ?? "" },
            session.NewCallOptions()).ConfigureAwait(false);

        var (inputs, sample) = PrepareInputs(context, settings, metadata);
        var labels = (await new ModelCatalog(session.Invoker, session.NewCallOptions).TryGetZooModelAsync(settings.Model).ConfigureAwait(false))?.Labels;

        var request = BuildRequest(settings, inputs);
        var started = Stopwatch.GetTimestamp();
        // The header lets an EffServe gateway route without reading the message; other servers ignore it.
        var options = session.NewCallOptions().WithHeaders(new Metadata { { "effserve-model", settings.Model } });
        var response = await client.ModelInferAsync(request, options).ConfigureAwait(false);
        var roundTrip = Stopwatch.GetElapsedTime(started);

        var report = BuildReport(session.Endpoint, settings, response, sample, labels, roundTrip);
        if (settings.Json)
        {
            CliJson.Write(context.Out, report);
        }
        else
        {
            Render(context.Console, report);
        }

        return ExitCodes.Success;
    }

    /// <summary>The request for <paramref name="inputs"/>, with the variant and threshold parameters when set.</summary>
    public static ModelInferRequest BuildRequest(InferSettings settings, IReadOnlyList<NamedTensor> inputs)
    {
        var request = new ModelInferRequest { ModelName = settings.Model, ModelVersion = settings.Version ?? "" };
        if (settings.Variant is { Length: > 0 } variant)
        {
            request.Parameters[VariantParameter] = new InferParameter { StringParam = variant };
        }

        if (settings.Threshold is { } threshold)
        {
            request.Parameters[ExitThresholdParameter] = new InferParameter { DoubleParam = threshold };
        }

        foreach (var input in inputs)
        {
            TensorCodec.AddInput(request, input, settings.Encoding);
        }

        return request;
    }

    /// <summary>Ranks each sample of the first output and gathers what the server reported.</summary>
    public static InferReport BuildReport(Uri endpoint, InferSettings settings, ModelInferResponse response, EvalSample? sample, IReadOnlyList<string>? labels, TimeSpan roundTrip)
    {
        var scores = TensorCodec.ReadOutput(response, 0);
        var output = response.Outputs[0];
        var batch = output.Shape.Count >= 2 && output.Shape[0] > 0 ? (int)output.Shape[0] : 1;
        if (scores.Length == 0 || scores.Length % batch != 0)
        {
            throw new CliException(ExitCodes.ServerError, $"output '{output.Name}' has shape {Shapes.Format(output.Shape)} and {scores.Length} elements; expected [batch, classes].");
        }

        var classes = scores.Length / batch;
        var parameters = response.Parameters;
        var exitStages = ExitStagesPerSample(parameters, batch);
        var samples = new List<SampleResult>(batch);
        for (var b = 0; b < batch; b++)
        {
            var probabilities = Classification.Softmax(scores.AsSpan(b * classes, classes));
            var top = Classification.TopK(probabilities, settings.TopK, labels);
            var truth = sample is not null && b == 0 ? sample.TrueClass : null;
            samples.Add(new SampleResult(
                sample?.Index ?? b,
                truth,
                truth is { } t ? Classification.LabelOf(t, labels) : null,
                top)
            {
                ExitStage = exitStages?[b],
            });
        }

        return new InferReport(
            Endpoint.Display(endpoint),
            response.ModelName.Length > 0 ? response.ModelName : settings.Model,
            response.ModelVersion.Length > 0 ? response.ModelVersion : settings.Version,
            output.Name,
            settings.Encoding == TensorEncoding.Raw ? "raw" : "typed",
            samples,
            Math.Round(roundTrip.TotalMilliseconds, 3))
        {
            Variant = parameters.TryGetValue(VariantParameter, out var v) && v.ParameterChoiceCase == InferParameter.ParameterChoiceOneofCase.StringParam ? v.StringParam : null,
            ExitStage = Int64Parameter(parameters, ExitStageParameter),
            QueueUs = Int64Parameter(parameters, QueueParameter),
            ComputeUs = Int64Parameter(parameters, ComputeParameter),
            BatchSize = Int64Parameter(parameters, BatchSizeParameter),
            Parameters = parameters.OrderBy(p => p.Key, StringComparer.Ordinal).ToDictionary(p => p.Key, p => (JsonNode?)ToJson(p.Value), StringComparer.Ordinal),
        };
    }

    /// <summary>Writes the report as tables: one ranking per sample, then the call's facts.</summary>
    public static void Render(IAnsiConsole console, InferReport report)
    {
        var version = report.Version is { Length: > 0 } v ? $" (version {v})" : "";
        console.MarkupLine("[bold]" + Markup.Escape(report.Model) + "[/]" + Markup.Escape($"{version} at {report.Endpoint}"));

        // A Label column only where labels say more than the class index does.
        var showLabels = report.Samples.Any(s => s.Top.Any(t => t.Label != t.Index.ToString(CultureInfo.InvariantCulture)));
        foreach (var sample in report.Samples)
        {
            var heading = string.Create(CultureInfo.InvariantCulture, $"Sample {sample.Sample}");
            if (report.Samples.Count > 1 && sample.ExitStage is { } stage)
            {
                heading += string.Create(CultureInfo.InvariantCulture, $" · exit stage {stage}");
            }

            if (sample.TrueLabel is not null)
            {
                heading += " · true label " + Markup.Escape(sample.TrueLabel) + (sample.Correct == true ? " · [green]top-1 correct[/]" : " · [red]top-1 wrong[/]");
            }

            console.WriteLine();
            console.MarkupLine(heading);
            var table = new Table().Border(TableBorder.Rounded).AddColumn("#").AddColumn("Class");
            if (showLabels)
            {
                table.AddColumn("Label");
            }

            table.AddColumn(new TableColumn("Probability").RightAligned());
            foreach (var score in sample.Top)
            {
                var bold = sample.TrueClass == score.Index ? "bold" : "default";
                var cells = new List<string>
                {
                    score.Rank.ToString(CultureInfo.InvariantCulture),
                    $"[{bold}]{score.Index.ToString(CultureInfo.InvariantCulture)}[/]",
                };
                if (showLabels)
                {
                    cells.Add($"[{bold}]{Markup.Escape(score.Label)}[/]");
                }

                cells.Add(FormatProbability(score.Probability));
                table.AddRow(cells.ToArray());
            }

            console.Write(table);
        }

        console.WriteLine();
        var grid = new Grid().AddColumn(new GridColumn().NoWrap()).AddColumn();
        AddFact(grid, "output", string.Create(CultureInfo.InvariantCulture, $"{report.Output} ({report.Samples.Count} sample{(report.Samples.Count == 1 ? "" : "s")}, {report.Encoding} contents sent)"));
        AddFact(grid, "variant", report.Variant);
        AddFact(grid, "exit stage", Format(report.ExitStage, ""));
        AddFact(grid, "queue", Format(report.QueueUs, " µs"));
        AddFact(grid, "compute", Format(report.ComputeUs, " µs"));
        AddFact(grid, "batch size", Format(report.BatchSize, ""));
        string[] shown = [VariantParameter, ExitStageParameter, ExitStagesParameter, QueueParameter, ComputeParameter, BatchSizeParameter];
        foreach (var (key, value) in report.Parameters.Where(p => !shown.Contains(p.Key)))
        {
            AddFact(grid, key, value?.ToJsonString() is { } text ? text.Trim('"') : "null");
        }

        AddFact(grid, "round trip", string.Create(CultureInfo.InvariantCulture, $"{report.RoundTripMs:0.###} ms (client)"));
        console.Write(grid);
    }

    /// <summary>
    /// A probability for people: a percentage with two decimals (97.12%); below 0.01% in scientific
    /// notation as a fraction (3.2e-06), so that small is not shown as zero; just under one as
    /// &gt;99.99%, so that almost certain is not shown as certain.
    /// </summary>
    public static string FormatProbability(double probability) => probability switch
    {
        double.NaN => "NaN",
        >= 1 => "100%",
        >= 0.99995 => ">99.99%",
        >= 0.0001 => string.Create(CultureInfo.InvariantCulture, $"{probability * 100:0.00}%"),
        > 0 => probability.ToString("0.0e+00", CultureInfo.InvariantCulture),
        _ => "0%",
    };

    private static (List<NamedTensor> Inputs, EvalSample? Sample) PrepareInputs(CliContext context, InferSettings settings, ModelMetadataResponse metadata)
    {
        if (metadata.Inputs.Count == 0)
        {
            throw new CliException(ExitCodes.ServerError, $"the server reports no inputs for model '{settings.Model}'.");
        }

        if (settings.Sample is { } index)
        {
            var zoo = EvalSet.ResolveZoo(settings.Zoo, context.GetEnvironmentVariable, context.WorkingDirectory);
            var sample = EvalSet.LoadSample(zoo, settings.Model, index);
            var inputs = new List<NamedTensor>(metadata.Inputs.Count);
            foreach (var input in metadata.Inputs)
            {
                if (!sample.Inputs.TryGetValue(input.Name, out var row))
                {
                    throw CliException.InvalidInput($"the evaluation set of '{settings.Model}' has no data for input '{input.Name}' (it has: {string.Join(", ", sample.Inputs.Keys)}).");
                }

                inputs.Add(InputShaping.Fit(row, input, $"evaluation input '{input.Name}'"));
            }

            return (inputs, sample);
        }

        var path = Path.GetFullPath(settings.InputFile!, context.WorkingDirectory);
        if (metadata.Inputs.Count != 1)
        {
            throw CliException.InvalidInput($"model '{settings.Model}' has {metadata.Inputs.Count} inputs ({string.Join(", ", metadata.Inputs.Select(i => i.Name))}); --input sends one. Use --sample instead.");
        }

        NpyArray array;
        try
        {
            array = NpyArray.Read(path);
        }
        catch (Exception e) when (e is FormatException or ArgumentException or IOException or UnauthorizedAccessException)
        {
            throw CliException.InvalidInput(e is FileNotFoundException or DirectoryNotFoundException ? $"{path} does not exist." : e.Message, e);
        }

        return ([InputShaping.Fit(array, metadata.Inputs[0], path)], null);
    }

    private void Validate(System.CommandLine.Parsing.CommandResult result)
    {
        var hasSample = result.GetResult(_sample) is { Implicit: false };
        var hasInput = result.GetResult(_input) is { Implicit: false };
        if (hasSample == hasInput)
        {
            result.AddError("Give exactly one of --sample INDEX and --input FILE.npy.");
        }

        if (result.GetResult(_raw) is { Implicit: false } raw && raw.GetValueOrDefault<bool>() &&
            result.GetResult(_typed) is { Implicit: false } typed && typed.GetValueOrDefault<bool>())
        {
            result.AddError("--raw and --typed exclude each other.");
        }
    }

    /// <summary>
    /// Each sample's early-exit stage: from <c>effserve.exit_stages</c> (comma-separated, one per
    /// sample) when the server sends it, else <c>effserve.exit_stage</c> for a batch of one.
    /// </summary>
    private static long[]? ExitStagesPerSample(MapField<string, InferParameter> parameters, int batch)
    {
        if (parameters.TryGetValue(ExitStagesParameter, out var list) && list.ParameterChoiceCase == InferParameter.ParameterChoiceOneofCase.StringParam)
        {
            var parts = list.StringParam.Split(',', StringSplitOptions.TrimEntries);
            var stages = new long[parts.Length];
            var ok = parts.Length == batch;
            for (var i = 0; ok && i < parts.Length; i++)
            {
                ok = long.TryParse(parts[i], NumberStyles.Integer, CultureInfo.InvariantCulture, out stages[i]);
            }

            if (ok)
            {
                return stages;
            }
        }

        return batch == 1 && Int64Parameter(parameters, ExitStageParameter) is { } single ? [single] : null;
    }

    private static long? Int64Parameter(MapField<string, InferParameter> parameters, string key)
    {
        if (!parameters.TryGetValue(key, out var p))
        {
            return null;
        }

        return p.ParameterChoiceCase switch
        {
            InferParameter.ParameterChoiceOneofCase.Int64Param => p.Int64Param,
            InferParameter.ParameterChoiceOneofCase.Uint64Param => (long)Math.Min(p.Uint64Param, long.MaxValue),
            InferParameter.ParameterChoiceOneofCase.DoubleParam when double.IsFinite(p.DoubleParam) => (long)Math.Round(p.DoubleParam),
            _ => null,
        };
    }

    private static JsonValue? ToJson(InferParameter parameter) => parameter.ParameterChoiceCase switch
    {
        InferParameter.ParameterChoiceOneofCase.BoolParam => JsonValue.Create(parameter.BoolParam),
        InferParameter.ParameterChoiceOneofCase.Int64Param => JsonValue.Create(parameter.Int64Param),
        InferParameter.ParameterChoiceOneofCase.StringParam => JsonValue.Create(parameter.StringParam),
        InferParameter.ParameterChoiceOneofCase.DoubleParam => JsonValue.Create(parameter.DoubleParam),
        InferParameter.ParameterChoiceOneofCase.Uint64Param => JsonValue.Create(parameter.Uint64Param),
        _ => null,
    };

    private static string? Format(long? value, string unit) =>
        value is { } v ? v.ToString(CultureInfo.InvariantCulture) + unit : null;

    private static void AddFact(Grid grid, string name, string? value)
    {
        if (value is not null)
        {
            grid.AddRow("[grey]" + Markup.Escape(name) + "[/]", Markup.Escape(value));
        }
    }
}
