using EffServe.Contracts.Inference;
using EffServe.Contracts.Zoo;

namespace EffServe.Cli.Tests.Infrastructure;

/// <summary>Answers shaped like the demo zoo's digits model.</summary>
public static class Canned
{
    public static ModelMetadataResponse DigitsMetadata()
    {
        var metadata = new ModelMetadataResponse { Name = "digits", Platform = "onnx_onnxv1" };
        metadata.Versions.Add("1");
        var input = new ModelMetadataResponse.Types.TensorMetadata { Name = "image", Datatype = "FP32" };
        input.Shape.AddRange([-1, 1, 8, 8]);
        var output = new ModelMetadataResponse.Types.TensorMetadata { Name = "logits", Datatype = "FP32" };
        output.Shape.AddRange([-1, 10]);
        metadata.Inputs.Add(input);
        metadata.Outputs.Add(output);
        return metadata;
    }

    public static FakeInferenceService DigitsInference(List<RepositoryIndexResponse.Types.ModelIndex>? index = null)
    {
        var service = new FakeInferenceService { IndexEntries = index };
        service.Models["digits"] = DigitsMetadata();
        return service;
    }

    public static ZooModel DigitsZooModel(IEnumerable<string>? labels = null)
    {
        var model = new ZooModel
        {
            Name = "digits",
            Version = "1",
            Task = "image-classification",
            Ready = true,
            DefaultVariant = "fp32",
            MaxBatchSize = 64,
            EvalSamples = 540,
        };
        model.Inputs.Add(new Contracts.Zoo.TensorSpec { Name = "image", Datatype = "FP32", Shape = { -1, 1, 8, 8 } });
        model.Outputs.Add(new Contracts.Zoo.TensorSpec { Name = "logits", Datatype = "FP32", Shape = { -1, 10 } });
        model.Labels.AddRange(labels ?? Enumerable.Range(0, 10).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        model.Variants.Add(new ZooVariant
        {
            Name = "fp32",
            Kind = "fp32",
            Provider = "cpu",
            State = "LOADED",
            Stages = 1,
            Profile = new VariantProfile { Accuracy = 0.987 },
        });
        model.Variants.Add(new ZooVariant { Name = "early-exit", Kind = "early-exit", Provider = "cpu", State = "LOADED", Stages = 3, ExitThreshold = 0.9 });
        model.Variants.Add(new ZooVariant { Name = "fp16-gpu", Kind = "fp16", Provider = "cuda", State = "SKIPPED", Reason = "no CUDA on this machine", Stages = 1 });
        return model;
    }
}
