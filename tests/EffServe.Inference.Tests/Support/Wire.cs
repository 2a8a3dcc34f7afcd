using System.Globalization;
using System.Runtime.InteropServices;
using EffServe.Contracts.Inference;
using Google.Protobuf;

namespace EffServe.Inference.Tests.Support;

/// <summary>Builds OIP requests and reads responses, the way a client on the wire would.</summary>
internal static class Wire
{
    public const string Digits = "digits";
    public const string Image = "image";
    public const string Logits = "logits";

    public static InferParameter Text(string value) => new() { StringParam = value };

    public static InferParameter Integer(long value) => new() { Int64Param = value };

    public static InferParameter Real(double value) => new() { DoubleParam = value };

    public static ByteString Raw<T>(ReadOnlySpan<T> values)
        where T : unmanaged => ByteString.CopyFrom(MemoryMarshal.AsBytes(values));

    public static T[] Read<T>(ByteString raw)
        where T : unmanaged => MemoryMarshal.Cast<byte, T>(raw.Span).ToArray();

    /// <summary>A digits request whose single input travels in raw_input_contents.</summary>
    public static ModelInferRequest DigitsRaw(ReadOnlySpan<float> pixels, string? id = null)
    {
        var request = DigitsInput(pixels.Length / DigitsEval.Pixels, id);
        request.RawInputContents.Add(Raw(pixels));
        return request;
    }

    /// <summary>A digits request whose single input travels in fp32_contents.</summary>
    public static ModelInferRequest DigitsTyped(ReadOnlySpan<float> pixels, string? id = null)
    {
        var request = DigitsInput(pixels.Length / DigitsEval.Pixels, id);
        request.Inputs[0].Contents = new InferTensorContents();
        request.Inputs[0].Contents.Fp32Contents.AddRange(pixels.ToArray());
        return request;
    }

    /// <summary>A digits request for samples [start, start + count) of the evaluation set, raw.</summary>
    public static ModelInferRequest DigitsEvalRaw(int start, int count, string? id = null) => DigitsRaw(DigitsEval.Images(start, count), id);

    /// <summary>A digits request with one image input of <paramref name="batch"/> samples and no contents yet.</summary>
    public static ModelInferRequest DigitsInput(long batch, string? id = null) => new()
    {
        ModelName = Digits,
        Id = id ?? "",
        Inputs = { new ModelInferRequest.Types.InferInputTensor { Name = Image, Datatype = "FP32", Shape = { batch, 1, 8, 8 } } },
    };

    /// <summary>The logits of a digits response, raw or typed.</summary>
    public static float[] LogitsOf(ModelInferResponse response)
    {
        var index = response.Outputs.ToList().FindIndex(o => o.Name == Logits);
        Assert.True(index >= 0, $"The response has no output '{Logits}'.");
        return response.RawOutputContents.Count > 0
            ? Read<float>(response.RawOutputContents[index])
            : response.Outputs[index].Contents.Fp32Contents.ToArray();
    }

    /// <summary>Index of the largest logit of each row.</summary>
    public static int[] ArgMax(float[] logits, int classes = DigitsEval.Classes)
    {
        var rows = new int[logits.Length / classes];
        for (var r = 0; r < rows.Length; r++)
        {
            var row = logits.AsSpan(r * classes, classes);
            var best = 0;
            for (var c = 1; c < classes; c++)
            {
                if (row[c] > row[best])
                {
                    best = c;
                }
            }

            rows[r] = best;
        }

        return rows;
    }

    /// <summary>Per-sample exit stages of an early-exit response: effserve.exit_stages when batch &gt; 1, else effserve.exit_stage.</summary>
    public static int[] ExitStagesOf(ModelInferResponse response)
    {
        if (response.Parameters.TryGetValue("effserve.exit_stages", out var many))
        {
            Assert.Equal(InferParameter.ParameterChoiceOneofCase.StringParam, many.ParameterChoiceCase);
            return many.StringParam.Split(',').Select(s => int.Parse(s, NumberStyles.None, CultureInfo.InvariantCulture)).ToArray();
        }

        var one = Parameter(response, "effserve.exit_stage");
        Assert.Equal(InferParameter.ParameterChoiceOneofCase.Int64Param, one.ParameterChoiceCase);
        return [(int)one.Int64Param];
    }

    public static InferParameter Parameter(ModelInferResponse response, string key)
    {
        Assert.True(response.Parameters.TryGetValue(key, out var value), $"The response has no parameter '{key}' (it has {string.Join(", ", response.Parameters.Keys)}).");
        return value;
    }

    public static string StringParameter(ModelInferResponse response, string key)
    {
        var value = Parameter(response, key);
        Assert.Equal(InferParameter.ParameterChoiceOneofCase.StringParam, value.ParameterChoiceCase);
        return value.StringParam;
    }

    public static long Int64Parameter(ModelInferResponse response, string key)
    {
        var value = Parameter(response, key);
        Assert.Equal(InferParameter.ParameterChoiceOneofCase.Int64Param, value.ParameterChoiceCase);
        return value.Int64Param;
    }

    public static double DoubleParameter(ModelInferResponse response, string key)
    {
        var value = Parameter(response, key);
        Assert.Equal(InferParameter.ParameterChoiceOneofCase.DoubleParam, value.ParameterChoiceCase);
        return value.DoubleParam;
    }
}
