using System.Runtime.InteropServices;
using EffServe.Core.Batching;
using EffServe.Core.Tensors;

namespace EffServe.Core.Tests.Batching;

public sealed class BatchTensorsTests
{
    private static NamedTensor Floats(string name, long[] shape, params float[] values) =>
        NamedTensor.FromBytes(name, DataType.Fp32, shape, MemoryMarshal.AsBytes(values.AsSpan()).ToArray());

    private static float[] ValuesOf(NamedTensor t) => MemoryMarshal.Cast<byte, float>(t.Data.Span).ToArray();

    [Fact]
    public void JoinKey_SameShapesButTheBatch_Equal()
    {
        var a = BatchTensors.JoinKey([Floats("x", [1, 2], 1, 2)], ["y"]);
        var b = BatchTensors.JoinKey([Floats("x", [3, 2], 1, 2, 3, 4, 5, 6)], ["y"]);

        Assert.NotNull(a);
        Assert.Equal(a, b);
    }

    [Fact]
    public void JoinKey_OtherShapeOutputsOrStrings_Differ()
    {
        var a = BatchTensors.JoinKey([Floats("x", [1, 2], 1, 2)], ["y"]);

        Assert.NotEqual(a, BatchTensors.JoinKey([Floats("x", [1, 1], 1)], ["y"]));
        Assert.NotEqual(a, BatchTensors.JoinKey([Floats("x", [1, 2], 1, 2)], ["z"]));
        Assert.Null(BatchTensors.JoinKey([NamedTensor.FromStrings("s", [1], [new byte[] { 65 }])], ["y"]));
    }

    [Fact]
    public void ConcatenateThenSplit_EachRequestGetsItsOwnRows()
    {
        IReadOnlyList<NamedTensor> first = [Floats("x", [1, 2], 1, 2)];
        IReadOnlyList<NamedTensor> second = [Floats("x", [2, 2], 3, 4, 5, 6)];

        var joined = BatchTensors.Concatenate([first, second]);

        Assert.Equal([3L, 2L], joined[0].Shape);
        Assert.Equal([1f, 2, 3, 4, 5, 6], ValuesOf(joined[0]));

        // A model that doubles its input, and a scalar output without a batch dimension.
        var outputs = new List<NamedTensor> { Floats("y", [3, 2], 2, 4, 6, 8, 10, 12), Floats("n", [], 7) };
        var parts = BatchTensors.Split(outputs, [1, 2]);

        Assert.Equal([2f, 4], ValuesOf(parts[0][0]));
        Assert.Equal([1L, 2L], parts[0][0].Shape);
        Assert.Equal([6f, 8, 10, 12], ValuesOf(parts[1][0]));
        Assert.Equal([2L, 2L], parts[1][0].Shape);
        Assert.All(parts, p => Assert.Equal([7f], ValuesOf(p[1])));
    }

    [Fact]
    public void Split_StringOutputs_SplitByRow()
    {
        var labels = NamedTensor.FromStrings("label", [3], [new byte[] { 65 }, new byte[] { 66 }, new byte[] { 67 }]);

        var parts = BatchTensors.Split([labels], [2, 1]);

        Assert.Equal(2, parts[0][0].Strings!.Count);
        Assert.Equal((byte)67, parts[1][0].Strings![0].Span[0]);
    }
}
