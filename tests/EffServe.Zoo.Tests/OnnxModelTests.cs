using EffServe.Core.Tensors;
using EffServe.Zoo.Data;
using EffServe.Zoo.Onnx;
using EffServe.Zoo.OnnxFormat;
using EffServe.Zoo.Tests.Support;
using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;

namespace EffServe.Zoo.Tests;

public sealed class OnnxModelTests
{
    [Fact]
    public void ReadWrite_Digits_SameBytesAndIdenticalOutputsInOrt()
    {
        var original = File.ReadAllBytes(TestPaths.DigitsModel);
        var written = OnnxModel.Load(TestPaths.DigitsModel).ToBytes();

        Assert.Equal(original, written);
        var samples = new SampleSet(new Dictionary<string, NpyArray> { ["image"] = NpyArray.Read(TestPaths.DigitsImages) });
        string[] outputs = ["logits", "exit1_logits", "exit2_logits"];
        var before = Run(original, samples, outputs);
        var after = Run(written, samples, outputs);
        foreach (var output in outputs)
        {
            Assert.Equal(0, before.MaxAbsDifference(after, output));
        }
    }

    [Theory]
    [InlineData("add", "add.onnx")]
    [InlineData("typed", "typed.onnx")]
    [InlineData("typed-bf16", "typed_bf16.onnx")]
    public void ReadWrite_Fixtures_SameMessageAndSameSignatureInOrt(string model, string file)
    {
        var path = TestPaths.Fixture(model, file);
        var original = File.ReadAllBytes(path);
        var written = OnnxModel.Load(path).ToBytes();

        Assert.Equal(ModelProto.Parser.ParseFrom(original), ModelProto.Parser.ParseFrom(written));
        using var a = OrtRunner.Open(original);
        using var b = OrtRunner.Open(written);
        Assert.Equal(Describe(a), Describe(b));
    }

    [Fact]
    public void ReadWrite_AddFixture_IdenticalOutputs()
    {
        var path = TestPaths.Fixture("add", "add.onnx");
        var model = OnnxModel.Load(path);
        var samples = SampleSet.Random(model.InputSpecs(), hasBatchDimension: true, samples: 16, seed: 3);

        var before = Run(File.ReadAllBytes(path), samples, ["y"]);
        var after = Run(model.ToBytes(), samples, ["y"]);

        Assert.Equal(0, before.MaxAbsDifference(after, "y"));
    }

    [Fact]
    public void ReadWrite_UnknownFields_Survive()
    {
        // Field 1000 of ModelProto is not in EffServe's schema (or ONNX's): it must come back out.
        var original = File.ReadAllBytes(TestPaths.Fixture("add", "add.onnx"));
        using var extra = new MemoryStream();
        var output = new CodedOutputStream(extra);
        output.WriteTag(1000, WireFormat.WireType.Varint);
        output.WriteInt64(42);
        output.Flush();
        var withUnknown = original.Concat(extra.ToArray()).ToArray();

        var written = OnnxModel.Parse(withUnknown, "test").ToBytes();

        Assert.Equal(extra.ToArray(), written[^extra.ToArray().Length..]);
        using var session = OrtRunner.Open(written);
        Assert.Single(session.OutputMetadata);
    }

    [Fact]
    public void Load_ExternalData_ReadIntoTheModel()
    {
        using var temp = new TempFolder();
        var model = OnnxModel.Load(TestPaths.DigitsModel);
        var external = model.Clone();
        var weight = external.Graph.Initializer.First(t => t.Name == "block2.0.weight");
        File.WriteAllBytes(temp.Combine("weights.bin"), [.. new byte[128], .. weight.RawData.ToByteArray()]);
        weight.RawData = ByteString.Empty;
        weight.DataLocation = TensorProto.Types.DataLocation.External;
        weight.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = "weights.bin" });
        weight.ExternalData.Add(new StringStringEntryProto { Key = "offset", Value = "128" });
        external.Save(temp.Combine("model.onnx"));

        var loaded = OnnxModel.Load(temp.Combine("model.onnx"));

        Assert.True(loaded.HadExternalData);
        Assert.Equal(model.ToBytes(), loaded.ToBytes());
    }

    [Fact]
    public void Load_TextFile_NotAnOnnxModel()
    {
        using var temp = new TempFolder();
        File.WriteAllText(temp.Combine("model.onnx"), "name: digits\nthis is a manifest, not a model\n");

        var error = Assert.Throws<ZooToolException>(() => OnnxModel.Load(temp.Combine("model.onnx")));

        Assert.Equal(ZooToolError.InvalidModel, error.Error);
        Assert.Contains("is not an ONNX model", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Specs_Digits_SymbolicBatchIsMinusOne()
    {
        var model = OnnxModel.Load(TestPaths.DigitsModel);

        var input = Assert.Single(model.InputSpecs());
        Assert.Equal(new TensorSpec("image", DataType.Fp32, [-1, 1, 8, 8]).ToString(), input.ToString());
        Assert.Equal(["logits", "exit1_logits", "exit2_logits"], model.OutputSpecs().Select(o => o.Name));
        Assert.All(model.OutputSpecs(), o => Assert.Equal([-1L, 10L], o.Shape));
    }

    [Fact]
    public void Initializers_AsFloatsAndIntegers()
    {
        var model = OnnxModel.Load(TestPaths.DigitsModel);
        var weight = model.FindInitializer("block1.0.weight")!;

        var values = TensorData.ToFloats(weight);

        Assert.Equal(16 * 9, values.Length);
        Assert.Equal(BitConverter.ToSingle(weight.RawData.Span[..4]), values[0]);
        Assert.Equal([3L, -1L, 7L], TensorData.ToInt64s(TensorData.FromInt32s("i", [3], [3, -1, 7])));
        Assert.Equal([-5L, 127L], TensorData.ToInt64s(TensorData.FromInt8s("s", [2], [-5, 127])));
        Assert.Equal([1.5f, -2f], TensorData.ToFloats(TensorData.FromFloatsAsHalf("h", [2], [1.5f, -2f])));
    }

    [Fact]
    public void TopologicalOrder_ShuffledNodes_ProducersFirst()
    {
        var model = OnnxModel.Load(TestPaths.DigitsModel).Clone();
        var reversed = model.Graph.Node.Reverse().ToList();
        model.Graph.Node.Clear();
        model.Graph.Node.AddRange(reversed);

        var order = model.TopologicalOrder();

        var available = new HashSet<string>(model.Graph.Initializer.Select(t => t.Name)) { "image" };
        foreach (var node in order)
        {
            Assert.All(node.Input, i => Assert.Contains(i, available));
            available.UnionWith(node.Output);
        }

        Assert.Equal(model.Graph.Node.Count, order.Count);
    }

    private static ModelOutputs Run(byte[] model, SampleSet samples, string[] outputs)
    {
        using var session = OrtRunner.Open(model);
        return ModelOutputs.Collect(session, samples, hasBatchDimension: true, outputs, cancellationToken: TestContext.Current.CancellationToken);
    }

    private static string Describe(InferenceSession session) => string.Join("; ",
        session.InputMetadata.Concat(session.OutputMetadata).Select(kv => $"{kv.Key} {kv.Value.ElementDataType} [{string.Join(",", kv.Value.Dimensions)}]"));
}
