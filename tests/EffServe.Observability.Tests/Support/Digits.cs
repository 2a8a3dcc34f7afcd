using System.Runtime.InteropServices;
using EffServe.Contracts.Inference;
using EffServe.Core.Accounting;
using EffServe.Core.Tensors;
using EffServe.Testing;
using Google.Protobuf;

namespace EffServe.Observability.Tests.Support;

/// <summary>Requests for the demo model <c>digits</c> (images of its evaluation set) and readers of its responses.</summary>
internal static class Digits
{
    public const string Model = "digits";
    private const int Pixels = 64;

    private static readonly Lazy<float[]> s_images = new(() =>
        MemoryMarshal.Cast<byte, float>(NpyArray.Read(Path.Combine(RepoPaths.Zoo, Model, "eval", "images.npy")).Data).ToArray());

    public static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>
    /// A raw request for <paramref name="batch"/> images from <paramref name="first"/>; with
    /// <paramref name="threshold"/> it runs the early-exit variant, with <paramref name="sloMs"/> it carries an SLO.
    /// </summary>
    public static ModelInferRequest Request(int first, int batch = 1, double? threshold = null, double? sloMs = null)
    {
        var images = s_images.Value;
        var count = images.Length / Pixels;
        var pixels = new float[batch * Pixels];
        for (var i = 0; i < batch; i++)
        {
            images.AsSpan((first + i) % count * Pixels, Pixels).CopyTo(pixels.AsSpan(i * Pixels));
        }

        var request = new ModelInferRequest
        {
            ModelName = Model,
            Inputs = { new ModelInferRequest.Types.InferInputTensor { Name = "image", Datatype = "FP32", Shape = { batch, 1, 8, 8 } } },
            RawInputContents = { ByteString.CopyFrom(MemoryMarshal.AsBytes(pixels.AsSpan())) },
        };
        if (threshold is { } t)
        {
            request.Parameters.Add("effserve.exit_threshold", new InferParameter { DoubleParam = t });
        }

        if (sloMs is { } slo)
        {
            request.Parameters.Add("effserve.slo_ms", new InferParameter { DoubleParam = slo });
        }

        return request;
    }

    public static double Double(ModelInferResponse response, string key)
    {
        Assert.True(response.Parameters.TryGetValue(key, out var value), $"The response has no parameter '{key}' (it has {string.Join(", ", response.Parameters.Keys)}).");
        Assert.Equal(InferParameter.ParameterChoiceOneofCase.DoubleParam, value.ParameterChoiceCase);
        return value.DoubleParam;
    }

    public static string Text(ModelInferResponse response, string key)
    {
        Assert.True(response.Parameters.TryGetValue(key, out var value), $"The response has no parameter '{key}'.");
        Assert.Equal(InferParameter.ParameterChoiceOneofCase.StringParam, value.ParameterChoiceCase);
        return value.StringParam;
    }

    /// <summary>Asserts that a successful response carries energy, its source, cost and carbon, all positive.</summary>
    public static void AssertCharged(ModelInferResponse response, string source = AccountingLabels.Modelled)
    {
        Assert.True(Double(response, AccountingParameters.EnergyMj) > 0, "effserve.energy_mj is not positive.");
        Assert.Equal(source, Text(response, AccountingParameters.EnergySource));
        Assert.True(Double(response, AccountingParameters.CostUsd) > 0, "effserve.cost_usd is not positive.");
        Assert.True(Double(response, AccountingParameters.CarbonMg) > 0, "effserve.carbon_mg is not positive.");
    }
}
