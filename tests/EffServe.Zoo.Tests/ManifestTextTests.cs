using EffServe.Zoo.Manifest;

namespace EffServe.Zoo.Tests;

public sealed class ManifestTextTests
{
    private const string Manifest = """
        # A hand-written manifest: comments stay.
        name: demo
        task: image-classification
        max_batch_size: 8
        inputs:
          - { name: x, datatype: FP32, shape: [-1, 4] }
        outputs:
          - { name: y, datatype: FP32, shape: [-1, 2] }

        variants:
          # the reference
          - name: fp32
            kind: fp32
            file: fp32/demo.onnx

          - { name: old, kind: int8, file: old/demo.onnx }
        """;

    private static readonly VariantEntry s_int8 = new("int8", "int8", "cpu", "int8/demo.onnx", null, null, "static INT8");

    [Fact]
    public void WithVariant_New_AppendedAtTheEndKeepingComments()
    {
        var text = ManifestText.WithVariant(Manifest, s_int8);

        Assert.StartsWith(Manifest.TrimEnd(), text, StringComparison.Ordinal);
        Assert.EndsWith("""

              # made by effserve zoo: static INT8
              - name: int8
                kind: int8
                provider: cpu
                file: int8/demo.onnx

            """.Replace("\r\n", "\n", StringComparison.Ordinal), text, StringComparison.Ordinal);
    }

    [Fact]
    public void WithVariant_SameName_ReplacedInPlace()
    {
        var text = ManifestText.WithVariant(Manifest, s_int8 with { Name = "old", File = "old/new.onnx" });

        Assert.DoesNotContain("old/demo.onnx", text, StringComparison.Ordinal);
        Assert.Contains("file: old/new.onnx", text, StringComparison.Ordinal);
        Assert.Contains("# the reference", text, StringComparison.Ordinal);
        Assert.Equal(1, text.Split("name: old").Length - 1);
    }

    [Fact]
    public void WithVariant_EarlyExit_StagesAsABlockListWithYamlWordsQuoted()
    {
        var entry = new VariantEntry("ee", "early-exit", "cpu", null, [("ee/stage1.onnx", "exit1"), ("ee/stage2.onnx", "y")], 0.8, null);

        var text = ManifestText.WithVariant(Manifest, entry);

        Assert.Contains("""
              - name: ee
                kind: early-exit
                provider: cpu
                exit_threshold: 0.8
                stages:
                  - file: ee/stage1.onnx
                    exit: exit1
                  - file: ee/stage2.onnx
                    exit: "y"
            """.Replace("\r\n", "\n", StringComparison.Ordinal), text, StringComparison.Ordinal);
    }

    [Fact]
    public void WithVariant_InlineList_ClearError()
    {
        var error = Assert.Throws<ZooToolException>(() => ManifestText.WithVariant("name: demo\nvariants: [{ name: a }]\n", s_int8));

        Assert.Equal(ZooToolError.InvalidArgument, error.Error);
    }

    [Theory]
    [InlineData("digits", "digits")]
    [InlineData("fp32/digits.onnx", "fp32/digits.onnx")]
    [InlineData("two words", "\"two words\"")]
    [InlineData("yes", "\"yes\"")]
    [InlineData("/block1/Relu_output_0", "/block1/Relu_output_0")]
    [InlineData("say \"hi\"", "\"say \\\"hi\\\"\"")]
    public void Quote_PlainWhenSafe(string text, string expected)
    {
        Assert.Equal(expected, ManifestText.Quote(text));
    }
}
