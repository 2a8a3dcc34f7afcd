using EffServe.Zoo.Data;
using EffServe.Zoo.EarlyExit;
using EffServe.Zoo.Onnx;
using EffServe.Zoo.Tests.Support;
using Microsoft.ML.OnnxRuntime;

namespace EffServe.Zoo.Tests;

public sealed class StageSplitTests
{
    // digits.onnx names its feature tensors as PyTorch exported them; the stage models call them features1 and features2.
    private static readonly StageCut[] s_cuts =
    [
        new("/block1/block1.1/Relu_output_0", "features1"),
        new("/block2/block2.2/MaxPool_output_0", "features2"),
    ];

    private static readonly string[] s_exits = ["exit1_logits", "exit2_logits", "logits"];

    [Fact]
    public void Split_Digits_SameInterfaceAsTheCommittedStages()
    {
        var stages = StageSplitter.Split(DigitsData.Model(), s_cuts, s_exits);

        for (var k = 0; k < 3; k++)
        {
            var committed = OnnxModel.Load(TestPaths.DigitsStage(k + 1));
            Assert.Equal(committed.InputSpecs().Select(s => s.ToString()), stages[k].Model.InputSpecs().Select(s => s.ToString()));
            Assert.Equal(committed.OutputSpecs().Select(s => s.ToString()), stages[k].Model.OutputSpecs().Select(s => s.ToString()));
            Assert.Equal(committed.Graph.Initializer.Select(t => t.Name).Order(), stages[k].Model.Graph.Initializer.Select(t => t.Name).Order());
        }
    }

    [Fact]
    public void Split_Digits_ReproducesWhatTheCommittedStagesCompute()
    {
        var stages = StageSplitter.Split(DigitsData.Model(), s_cuts, s_exits);

        // Feed every stage pair the same inputs (the committed chain's) and compare all outputs.
        var inputs = DigitsData.Samples;
        for (var k = 0; k < 3; k++)
        {
            var committed = OnnxModel.Load(TestPaths.DigitsStage(k + 1));
            var outputs = committed.OutputSpecs().Select(o => o.Name).ToList();
            using var a = OrtRunner.Open(committed.ToBytes());
            using var b = OrtRunner.Open(stages[k].Model.ToBytes());
            var expected = ModelOutputs.Collect(a, inputs, true, outputs, cancellationToken: TestContext.Current.CancellationToken);
            var actual = ModelOutputs.Collect(b, inputs, true, outputs, cancellationToken: TestContext.Current.CancellationToken);
            foreach (var output in outputs)
            {
                Assert.True(expected.MaxAbsDifference(actual, output) <= 1e-5, $"stage {k + 1} output {output}");
            }

            if (k < 2)
            {
                var features = outputs[1];
                var rows = expected.Rows[features];
                var shape = committed.OutputSpecs()[1].Shape.Skip(1).ToArray();
                inputs = new SampleSet(new Dictionary<string, Core.Tensors.NpyArray>
                {
                    [features] = new(Core.Tensors.DataType.Fp32, [rows.Length, .. shape], rows.SelectMany(r => r).SelectMany(BitConverter.GetBytes).ToArray()),
                });
            }
        }
    }

    [Fact]
    public void Verify_DigitsChain_MatchesTheFullModelWithin1e5()
    {
        var model = DigitsData.Model();
        var stages = StageSplitter.Split(model, s_cuts, s_exits);

        var check = StageVerifier.Compare(model, stages, DigitsData.Samples, true, "eval", cancellationToken: TestContext.Current.CancellationToken);

        Assert.Equal(540, check.Samples);
        Assert.Equal(s_exits, check.MaxAbsDifference.Keys);
        Assert.True(check.Worst <= StageVerifier.Tolerance, $"worst {check.Worst}");
    }

    [Fact]
    public void Split_Digits_EachStageHoldsOnlyWhatItNeeds()
    {
        var stages = StageSplitter.Split(DigitsData.Model(), s_cuts, s_exits);

        Assert.Equal(["block1.0.bias", "block1.0.weight", "head1.bias", "head1.weight"], stages[0].Model.Graph.Initializer.Select(t => t.Name).Order(StringComparer.Ordinal));
        Assert.Equal(["features1"], stages[1].Inputs);
        Assert.Equal(["exit2_logits", "features2"], stages[1].Outputs);
        Assert.DoesNotContain(stages[2].Model.Graph.Node, n => n.OpType == "Conv" && n.Input.Contains("features1"));
    }

    [Fact]
    public void Split_UnknownCut_UnknownNameWithCandidates()
    {
        var error = Assert.Throws<ZooToolException>(() => StageSplitter.Split(DigitsData.Model(), [new("features1", "features1"), new("features2", "features2")], s_exits));

        Assert.Equal(ZooToolError.UnknownName, error.Error);
        Assert.Contains("'features1'", error.Message, StringComparison.Ordinal);
        Assert.Contains("/block1/block1.1/Relu_output_0", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Split_UnknownExit_UnknownName()
    {
        var error = Assert.Throws<ZooToolException>(() => StageSplitter.Split(DigitsData.Model(), s_cuts, ["exit1_logits", "exit9_logits", "logits"]));

        Assert.Equal(ZooToolError.UnknownName, error.Error);
        Assert.Contains("exit9_logits", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Split_SingleOutputModel_NoExitOutputs()
    {
        var error = Assert.Throws<ZooToolException>(() => StageSplitter.Split(OnnxModel.Load(TestPaths.DigitsStage(3)), [new("/Flatten_output_0", "f")], ["logits"]));

        Assert.Equal(ZooToolError.InvalidModel, error.Error);
        Assert.Contains("no exit outputs", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Split_WrongExitCount_InvalidArgument()
    {
        var error = Assert.Throws<ZooToolException>(() => StageSplitter.Split(DigitsData.Model(), s_cuts, ["exit1_logits", "logits"]));

        Assert.Equal(ZooToolError.InvalidArgument, error.Error);
    }

    [Fact]
    public void Split_CutOnABranch_DoesNotSeparateTheModel()
    {
        // The first exit head's pooled features: stage 2 still needs the convolution before them.
        var error = Assert.Throws<ZooToolException>(() =>
            StageSplitter.Split(DigitsData.Model(), [new("/MaxPool_output_0", "pooled"), s_cuts[1]], s_exits));

        Assert.Equal(ZooToolError.InvalidArgument, error.Error);
        Assert.Contains("do not separate", error.Message, StringComparison.Ordinal);
    }
}
