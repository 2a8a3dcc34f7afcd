using EffServe.Core.Zoo;
using EffServe.Zoo.Manifest;
using EffServe.Zoo.Onnx;

namespace EffServe.Zoo.Synth;

/// <summary>What <c>effserve zoo synth</c> was asked to do.</summary>
public sealed record SynthRequest(string Zoo, SynthArchitecture Architecture)
{
    /// <summary>The model's name; the architecture's (mobilenetv2, resnet18) when null.</summary>
    public string? Name { get; init; }

    public int Seed { get; init; }

    public int Classes { get; init; } = 1000;

    public bool Replace { get; init; }
}

/// <summary>The synthetic model as it now loads, and what it costs.</summary>
public sealed record SynthResult(ModelDefinition Model, string File, long FileBytes, long Parameters, long MultiplyAccumulates, long Flops);

/// <summary>Adds a synthetic model (random weights, real structure) to a zoo with one fp32 variant.</summary>
public static class SynthTool
{
    public static string DefaultName(SynthArchitecture architecture) => architecture.ToString().ToLowerInvariant();

    public static SynthResult Run(SynthRequest request, IToolProgress progress)
    {
        if (request.Classes < 1)
        {
            throw new ZooToolException(ZooToolError.InvalidArgument, $"--classes is {request.Classes}; use 1 or more.");
        }

        var name = request.Name ?? DefaultName(request.Architecture);
        ZooNames.Check(name, "model name");
        SynthModel synth;
        using (var step = progress.Start($"Building {request.Architecture}", 1))
        {
            synth = SynthModels.Build(request.Architecture, request.Seed, request.Classes);
            step.Advance(1);
        }

        var relative = $"fp32/{name}.onnx";
        var megaFlops = synth.Flops / 1e6;
        using var write = progress.Start("Writing and loading", 1);
        var definition = ZooWriter.CreateModel(request.Zoo, name, request.Replace, folder =>
        {
            synth.Model.Save(Path.Combine(folder, relative));
            var manifest = new ManifestContent(
                name,
                "image-classification",
                $"Synthetic {request.Architecture} at {SynthModels.Resolution}x{SynthModels.Resolution}, {request.Classes} classes, random weights (seed {request.Seed}); "
                    + $"{synth.Parameters / 1e6:F2} M parameters, {megaFlops:F0} MFLOPs per sample. For performance work only: its answers mean nothing.",
                64,
                synth.Model.InputSpecs(),
                synth.Model.OutputSpecs(),
                null,
                null,
                null,
                [new VariantEntry("fp32", "fp32", "cpu", relative, null, null, null)],
                $"{name}: made by `effserve zoo synth --arch {DefaultName(request.Architecture)} --seed {request.Seed} --classes {request.Classes}`.");
            File.WriteAllText(Path.Combine(folder, ZooLoader.ManifestFileName), ManifestText.Create(manifest));
        });
        write.Advance(1);
        var file = Path.Combine(definition.Directory, relative);
        return new SynthResult(definition, file, new FileInfo(file).Length, synth.Parameters, synth.MultiplyAccumulates, synth.Flops);
    }
}
