using System.Globalization;
using EffServe.Core.EarlyExit;
using EffServe.Core.Zoo;
using EffServe.Zoo.Data;
using EffServe.Zoo.Manifest;
using EffServe.Zoo.Onnx;

namespace EffServe.Zoo.EarlyExit;

/// <summary>What <c>effserve zoo early-exit</c> was asked to do.</summary>
public sealed record EarlyExitRequest(string Zoo, string Model, IReadOnlyList<StageCut> Cuts)
{
    /// <summary>Exit outputs, one per stage; when null, the graph's outputs other than the model's, in graph order, then the model's output.</summary>
    public IReadOnlyList<string>? Exits { get; init; }

    public string From { get; init; } = "fp32";

    public string Name { get; init; } = "early-exit";

    public double Threshold { get; init; } = ZooLoader.DefaultExitThreshold;

    /// <summary>Samples for the check; the evaluation set (or 32 random inputs) when null.</summary>
    public int? Samples { get; init; }

    public bool Replace { get; init; }
}

/// <summary>One stage as written.</summary>
public sealed record StageInfo(string File, string Exit, IReadOnlyList<string> Inputs, IReadOnlyList<string> Outputs, int Nodes);

/// <summary>What the split made and how closely the chain reproduces the model.</summary>
public sealed record EarlyExitResult(ModelDefinition Model, IReadOnlyList<StageInfo> Stages, StageCheck Check);

/// <summary>Cuts a multi-exit model into stage models, checks the chain, and adds it as an early-exit variant.</summary>
public static class EarlyExitTool
{
    public static EarlyExitResult Run(EarlyExitRequest request, IToolProgress progress, CancellationToken cancellationToken = default)
    {
        if (!ExitRule.IsValidThreshold(request.Threshold))
        {
            throw new ZooToolException(ZooToolError.InvalidArgument, $"--threshold is {request.Threshold.ToString(CultureInfo.InvariantCulture)}; it must lie in [0, 1].");
        }

        var zooModel = ZooModel.Open(request.Zoo, request.Model);
        zooModel.CheckNewVariant(request.Name, request.Replace);
        var definition = zooModel.Definition;
        if (definition.Outputs.Count != 1)
        {
            throw new ZooToolException(ZooToolError.InvalidModel, $"model '{definition.Name}' declares {definition.Outputs.Count} outputs; early exit answers with one (the final logits). Declare only that output in its manifest (zoo import --outputs).");
        }

        var source = zooModel.SourceVariant(request.From);
        var model = OnnxModel.Load(source.Stages[0].Path);
        var final = definition.Outputs[0].Name;
        var exits = request.Exits ?? DefaultExits(model, final);
        if (exits.Count > 0 && exits[^1] != final)
        {
            throw new ZooToolException(ZooToolError.InvalidArgument, $"the last exit must be the model's output '{final}' (the last stage answers for every sample left); the exits given end with '{exits[^1]}'.");
        }

        IReadOnlyList<StageModel> stages;
        using (var step = progress.Start("Cutting stages", 1))
        {
            stages = StageSplitter.Split(model, request.Cuts, exits);
            step.Advance(1);
        }

        var samples = SampleSources.EvaluationOrRandom(definition, request.Samples, seed: 0);
        StageCheck check;
        using (var step = progress.Start("Checking the chain against the model", samples.Samples.Count))
        {
            check = StageVerifier.Compare(model, stages, samples.Samples, definition.HasBatchDimension, samples.Source, step, cancellationToken);
        }

        if (check.Worst > StageVerifier.Tolerance)
        {
            var worst = check.MaxAbsDifference.MaxBy(kv => kv.Value);
            throw new ZooToolException(ZooToolError.VerificationFailed, $"the stages do not reproduce the model: exit '{worst.Key}' differs by up to {worst.Value:G3} (tolerance {StageVerifier.Tolerance:G1}) on {check.Samples} samples; nothing was written.");
        }

        var files = stages.Select((s, k) => $"{request.Name}/stage{k + 1}.onnx").ToList();
        var entry = new VariantEntry(request.Name, "early-exit", "cpu", null, files.Zip(stages, (f, s) => (f, s.Exit)).ToList(), request.Threshold,
            $"early-exit stages cut from {request.From} at {string.Join(", ", request.Cuts.Select(c => c.Name))}; chain checked within {StageVerifier.Tolerance:G1} on {check.Samples} samples");
        var updated = ZooWriter.AddVariant(zooModel, entry, request.Name, request.Replace, folder =>
        {
            for (var k = 0; k < stages.Count; k++)
            {
                stages[k].Model.Save(Path.Combine(folder, $"stage{k + 1}.onnx"));
            }
        });
        var infos = stages.Select((s, k) => new StageInfo(files[k], s.Exit, s.Inputs, s.Outputs, s.Nodes)).ToList();
        return new EarlyExitResult(updated, infos, check);
    }

    /// <summary>The graph's outputs other than <paramref name="final"/>, in the order the graph computes them, then <paramref name="final"/>.</summary>
    public static IReadOnlyList<string> DefaultExits(OnnxModel model, string final)
    {
        var order = model.TopologicalOrder();
        var position = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < order.Count; i++)
        {
            foreach (var output in order[i].Output)
            {
                position[output] = i;
            }
        }

        var others = model.Graph.Output.Select(o => o.Name).Where(o => o != final)
            .OrderBy(o => position.GetValueOrDefault(o, int.MaxValue))
            .ToList();
        return [.. others, final];
    }
}
