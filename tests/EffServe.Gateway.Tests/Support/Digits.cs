using System.Runtime.InteropServices;
using EffServe.Contracts.Inference;
using EffServe.Core.Tensors;
using EffServe.Testing;
using Google.Protobuf;

namespace EffServe.Gateway.Tests.Support;

/// <summary>Requests for the demo model <c>digits</c>, built from images of its evaluation set.</summary>
internal static class Digits
{
    public const string Model = "digits";
    public const int Pixels = 64;
    public const int Classes = 10;

    private static readonly Lazy<float[]> s_images = new(() =>
    {
        var images = NpyArray.Read(Path.Combine(RepoPaths.Zoo, "digits", "eval", "images.npy"));
        return MemoryMarshal.Cast<byte, float>(images.Data).ToArray();
    });

    public static int Count => s_images.Value.Length / Pixels;

    /// <summary>A ModelInfer request for <paramref name="batch"/> images from sample <paramref name="sample"/> (wrapping round), raw contents.</summary>
    public static ModelInferRequest Request(int sample, int batch = 1, string model = Model)
    {
        var pixels = new float[batch * Pixels];
        for (var i = 0; i < batch; i++)
        {
            s_images.Value.AsSpan((sample + i) % Count * Pixels, Pixels).CopyTo(pixels.AsSpan(i * Pixels));
        }

        return new ModelInferRequest
        {
            ModelName = model,
            Id = $"sample-{sample}",
            Inputs = { new ModelInferRequest.Types.InferInputTensor { Name = "image", Datatype = "FP32", Shape = { batch, 1, 8, 8 } } },
            RawInputContents = { ByteString.CopyFrom(MemoryMarshal.AsBytes(pixels.AsSpan())) },
        };
    }

    /// <summary>Number of logits in a response (raw or typed).</summary>
    public static int LogitCount(ModelInferResponse response) =>
        response.RawOutputContents.Count > 0 ? response.RawOutputContents[0].Length / sizeof(float) : response.Outputs[0].Contents.Fp32Contents.Count;

    /// <summary>Inferences a replica has counted for <c>digits</c>, asked directly (not through the gateway).</summary>
    public static async Task<ulong> InferenceCountAsync(InferenceServer replica)
    {
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(replica.Channel);
        var stats = await client.ModelStatisticsAsync(new ModelStatisticsRequest { Name = Model }, deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);
        return stats.ModelStats.Aggregate(0UL, (sum, s) => sum + s.InferenceCount);
    }
}
