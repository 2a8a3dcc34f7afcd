using System.Text.Json;
using EffServe.Cli.Commands;
using EffServe.Cli.Inference;
using EffServe.Cli.Listing;
using EffServe.Cli.Output;
using EffServe.Cli.Tests.Infrastructure;
using EffServe.Contracts.Inference;
using Google.Protobuf;

namespace EffServe.Cli.Tests;

public sealed class JsonOutputTests
{
    [Fact]
    public void InferReport_HasSamplesServerFactsAndParameters()
    {
        var response = new ModelInferResponse { ModelName = "digits", ModelVersion = "1" };
        response.Outputs.Add(new ModelInferResponse.Types.InferOutputTensor { Name = "logits", Datatype = "FP32", Shape = { 1, 3 } });
        response.RawOutputContents.Add(ByteString.CopyFrom(BitConverter.GetBytes(0f).Concat(BitConverter.GetBytes(5f)).Concat(BitConverter.GetBytes(1f)).ToArray()));
        response.Parameters["effserve.variant"] = new InferParameter { StringParam = "early-exit" };
        response.Parameters["effserve.exit_stage"] = new InferParameter { Int64Param = 2 };
        response.Parameters["effserve.queue_us"] = new InferParameter { Int64Param = 15 };
        response.Parameters["effserve.compute_us"] = new InferParameter { Int64Param = 120 };
        response.Parameters["effserve.batch_size"] = new InferParameter { Int64Param = 4 };
        response.Parameters["effserve.energy_mj"] = new InferParameter { DoubleParam = 0.5 };
        var sample = new EvalSample(7, 540, new Dictionary<string, Core.Tensors.NpyArray>(), TrueClass: 1);
        var settings = new InferSettings("digits") { TopK = 2, Json = true };

        var report = InferCommand.BuildReport(new Uri("http://localhost:8001"), settings, response, sample, ["zero", "one", "two"], TimeSpan.FromMilliseconds(1.25));
        using var json = Serialize(w => CliJson.Write(w, report));
        var root = json.RootElement;

        Assert.Equal("http://localhost:8001", root.GetProperty("endpoint").GetString());
        Assert.Equal("digits", root.GetProperty("model").GetString());
        Assert.Equal("1", root.GetProperty("version").GetString());
        Assert.Equal("logits", root.GetProperty("output").GetString());
        Assert.Equal("raw", root.GetProperty("encoding").GetString());
        Assert.Equal(1.25, root.GetProperty("roundTripMs").GetDouble());
        Assert.Equal("early-exit", root.GetProperty("variant").GetString());
        Assert.Equal(2, root.GetProperty("exitStage").GetInt64());
        Assert.Equal(15, root.GetProperty("queueUs").GetInt64());
        Assert.Equal(120, root.GetProperty("computeUs").GetInt64());
        Assert.Equal(4, root.GetProperty("batchSize").GetInt64());
        Assert.Equal(0.5, root.GetProperty("parameters").GetProperty("effserve.energy_mj").GetDouble());
        Assert.Equal("early-exit", root.GetProperty("parameters").GetProperty("effserve.variant").GetString());

        var only = Assert.Single(root.GetProperty("samples").EnumerateArray());
        Assert.Equal(7, only.GetProperty("sample").GetInt32());
        Assert.Equal(1, only.GetProperty("trueClass").GetInt64());
        Assert.Equal("one", only.GetProperty("trueLabel").GetString());
        Assert.True(only.GetProperty("correct").GetBoolean());
        Assert.Equal(2, only.GetProperty("exitStage").GetInt64());
        var top = only.GetProperty("top").EnumerateArray().ToList();
        Assert.Equal(2, top.Count);
        Assert.Equal(1, top[0].GetProperty("rank").GetInt32());
        Assert.Equal(1, top[0].GetProperty("index").GetInt32());
        Assert.Equal("one", top[0].GetProperty("label").GetString());
        Assert.InRange(top[0].GetProperty("probability").GetDouble(), 0.97, 0.99);
        Assert.Equal("two", top[1].GetProperty("label").GetString());
    }

    [Fact]
    public void InferReport_UnknownFacts_AreLeftOut()
    {
        var response = new ModelInferResponse();
        response.Outputs.Add(new ModelInferResponse.Types.InferOutputTensor { Name = "y", Datatype = "FP32", Shape = { 2 }, Contents = new InferTensorContents { Fp32Contents = { 1f, 2f } } });

        var report = InferCommand.BuildReport(new Uri("http://h:1"), new InferSettings("m"), response, null, null, TimeSpan.Zero);
        using var json = Serialize(w => CliJson.Write(w, report));
        var root = json.RootElement;

        Assert.False(root.TryGetProperty("variant", out _));
        Assert.False(root.TryGetProperty("exitStage", out _));
        Assert.False(root.TryGetProperty("version", out _));
        Assert.Empty(root.GetProperty("parameters").EnumerateObject());
        var sample = Assert.Single(root.GetProperty("samples").EnumerateArray());
        Assert.False(sample.TryGetProperty("trueClass", out _));
        Assert.False(sample.TryGetProperty("correct", out _));
    }

    [Fact]
    public void ModelsReport_ZooModel_HasVariantsAndLabels()
    {
        var model = ModelCatalog.FromZoo(Canned.DigitsZooModel());

        using var json = Serialize(w => CliJson.Write(w, new ModelsReport("http://localhost:8001", ListingSources.Zoo, [model])));
        var root = json.RootElement;

        Assert.Equal("zoo", root.GetProperty("source").GetString());
        var digits = Assert.Single(root.GetProperty("models").EnumerateArray());
        Assert.Equal("digits", digits.GetProperty("name").GetString());
        Assert.True(digits.GetProperty("ready").GetBoolean());
        Assert.Equal(10, digits.GetProperty("labels").GetArrayLength());
        var input = Assert.Single(digits.GetProperty("inputs").EnumerateArray());
        Assert.Equal("FP32", input.GetProperty("datatype").GetString());
        Assert.Equal([-1L, 1, 8, 8], input.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()));
        var variants = digits.GetProperty("variants").EnumerateArray().ToList();
        Assert.Equal(0.987, variants[0].GetProperty("accuracy").GetDouble());
        Assert.False(variants[0].TryGetProperty("exitThreshold", out _));
        Assert.Equal(3, variants[1].GetProperty("stages").GetInt32());
        Assert.Equal(0.9, variants[1].GetProperty("exitThreshold").GetDouble());
        Assert.Equal("SKIPPED", variants[2].GetProperty("state").GetString());
        Assert.Equal("no CUDA on this machine", variants[2].GetProperty("reason").GetString());
    }

    [Fact]
    public void ErrorReport_HasMessageExitCodeAndStatus()
    {
        using var json = Serialize(w => CliJson.Write(w, new ErrorReport(new ErrorDetail("NOT_FOUND from x: y", ExitCodes.NotFound, "NOT_FOUND"))));
        var error = json.RootElement.GetProperty("error");

        Assert.Equal("NOT_FOUND from x: y", error.GetProperty("message").GetString());
        Assert.Equal(3, error.GetProperty("exitCode").GetInt32());
        Assert.Equal("NOT_FOUND", error.GetProperty("status").GetString());
    }

    private static JsonDocument Serialize(Action<TextWriter> write)
    {
        using var writer = new StringWriter();
        write(writer);
        return JsonDocument.Parse(writer.ToString());
    }
}
