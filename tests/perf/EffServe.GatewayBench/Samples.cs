using System.Runtime.InteropServices;
using EffServe.Contracts.Inference;
using EffServe.Core.Tensors;
using Google.Protobuf;

namespace EffServe.GatewayBench;

/// <summary>A model's evaluation samples as the gateway benchmarks send them.</summary>
internal static class Samples
{
    /// <summary>
    /// Up to <paramref name="count"/> samples of the model's evaluation set (zoo/MODEL/eval/images.npy
    /// and labels.npy), chosen by <paramref name="seed"/>: one batch-1 ModelInfer request each (input
    /// <c>image</c>, raw contents, the model named only in the message) and the sample's label.
    /// </summary>
    public static (IReadOnlyList<ModelInferRequest> Requests, IReadOnlyList<long> Labels) Load(string root, string model, int seed, int count)
    {
        var folder = Path.Combine(root, "zoo", model, "eval");
        var imagesPath = Path.Combine(folder, "images.npy");
        var labelsPath = Path.Combine(folder, "labels.npy");
        if (!File.Exists(imagesPath) || !File.Exists(labelsPath))
        {
            throw new BenchException($"{model} has no evaluation set at {folder} (images.npy and labels.npy); the benchmark sends its samples.");
        }

        var images = NpyArray.Read(imagesPath);
        var labels = MemoryMarshal.Cast<byte, long>(NpyArray.Read(labelsPath).Data).ToArray();
        var random = new Random(seed);
        var chosen = Enumerable.Range(0, Math.Min(labels.Length, (int)images.Shape[0])).OrderBy(_ => random.Next()).Take(count).ToArray();
        var requests = chosen.Select(index =>
        {
            var tensor = new ModelInferRequest.Types.InferInputTensor { Name = "image", Datatype = images.DataType.ToWireName() };
            tensor.Shape.Add(1);
            tensor.Shape.Add(images.Shape.Skip(1));
            var request = new ModelInferRequest { ModelName = model };
            request.Inputs.Add(tensor);
            request.RawInputContents.Add(ByteString.CopyFrom(images.Data, index * images.RowBytes, images.RowBytes));
            return request;
        }).ToList();
        return (requests, [.. chosen.Select(i => labels[i])]);
    }

    /// <summary>"1×3×32×32": the shape of a request's first input.</summary>
    public static string Shape(ModelInferRequest request) => string.Join('×', request.Inputs[0].Shape);
}
