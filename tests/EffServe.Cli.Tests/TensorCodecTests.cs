using EffServe.Cli.Inference;
using EffServe.Contracts.Inference;
using EffServe.Core.Tensors;
using Google.Protobuf;

namespace EffServe.Cli.Tests;

public sealed class TensorCodecTests
{
    [Fact]
    public void AddInput_Raw_PutsBytesInRawContents()
    {
        var request = new ModelInferRequest();
        var tensor = NamedTensor.FromBytes("x", DataType.Fp32, [1, 2], FloatBytes(1.5f, -2f));

        TensorCodec.AddInput(request, tensor, TensorEncoding.Raw);

        var input = Assert.Single(request.Inputs);
        Assert.Equal("FP32", input.Datatype);
        Assert.Equal([1L, 2], input.Shape);
        Assert.Null(input.Contents);
        Assert.Equal(FloatBytes(1.5f, -2f), Assert.Single(request.RawInputContents).ToByteArray());
    }

    [Fact]
    public void AddInput_Typed_FillsFp32Contents()
    {
        var request = new ModelInferRequest();
        var tensor = NamedTensor.FromBytes("x", DataType.Fp32, [2], FloatBytes(1.5f, -2f));

        TensorCodec.AddInput(request, tensor, TensorEncoding.Typed);

        Assert.Empty(request.RawInputContents);
        Assert.Equal([1.5f, -2f], request.Inputs[0].Contents.Fp32Contents);
    }

    [Theory]
    [InlineData(DataType.Int8, new byte[] { 0xFF, 0x02 })]
    [InlineData(DataType.Int16, new byte[] { 0xFF, 0xFF, 0x02, 0x00 })]
    [InlineData(DataType.Int32, new byte[] { 0xFF, 0xFF, 0xFF, 0xFF, 0x02, 0x00, 0x00, 0x00 })]
    public void ToTyped_SmallSignedInts_UseIntContents(DataType type, byte[] data)
    {
        Assert.Equal([-1, 2], TensorCodec.ToTyped(type, data).IntContents);
    }

    [Fact]
    public void ToTyped_OtherTypes_UseTheirFields()
    {
        Assert.Equal([200u, 1u], TensorCodec.ToTyped(DataType.UInt8, [200, 1]).UintContents);
        Assert.Equal([true, false], TensorCodec.ToTyped(DataType.Bool, [1, 0]).BoolContents);
        Assert.Equal([-3L], TensorCodec.ToTyped(DataType.Int64, BitConverter.GetBytes(-3L)).Int64Contents);
        Assert.Equal([7UL], TensorCodec.ToTyped(DataType.UInt64, BitConverter.GetBytes(7UL)).Uint64Contents);
        Assert.Equal([0.25], TensorCodec.ToTyped(DataType.Fp64, BitConverter.GetBytes(0.25)).Fp64Contents);
    }

    [Theory]
    [InlineData(DataType.Fp16)]
    [InlineData(DataType.Bf16)]
    public void ToTyped_HalfPrecision_IsRawOnly(DataType type)
    {
        var error = Assert.Throws<CliException>(() => TensorCodec.ToTyped(type, [0, 0]));

        Assert.Contains("travels only raw", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ReadOutput_RawAndTyped_GiveTheSameValues()
    {
        var raw = Response(typed: false, 0.5f, 1f, -3f);
        var typed = Response(typed: true, 0.5f, 1f, -3f);

        Assert.Equal([0.5, 1.0, -3.0], TensorCodec.ReadOutput(raw, 0));
        Assert.Equal([0.5, 1.0, -3.0], TensorCodec.ReadOutput(typed, 0));
    }

    [Fact]
    public void ReadOutput_ElementCountDisagreesWithShape_Throws()
    {
        var response = Response(typed: false, 1f, 2f);
        response.Outputs[0].Shape[1] = 3;

        var error = Assert.Throws<CliException>(() => TensorCodec.ReadOutput(response, 0));

        Assert.Contains("carries 2", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void FromRaw_Fp16AndBf16_Decode()
    {
        byte[] half = [0x00, 0x3C]; // 1.0 in IEEE half
        byte[] bf16 = [0x80, 0x3F]; // 1.0 in bfloat16

        Assert.Equal([1.0], TensorCodec.FromRaw(DataType.Fp16, half, "y"));
        Assert.Equal([1.0], TensorCodec.FromRaw(DataType.Bf16, bf16, "y"));
    }

    private static ModelInferResponse Response(bool typed, params float[] values)
    {
        var output = new ModelInferResponse.Types.InferOutputTensor { Name = "y", Datatype = "FP32", Shape = { 1, values.Length } };
        var response = new ModelInferResponse();
        if (typed)
        {
            output.Contents = new InferTensorContents();
            output.Contents.Fp32Contents.AddRange(values);
        }
        else
        {
            response.RawOutputContents.Add(ByteString.CopyFrom(FloatBytes(values)));
        }

        response.Outputs.Add(output);
        return response;
    }

    private static byte[] FloatBytes(params float[] values)
    {
        var bytes = new byte[values.Length * sizeof(float)];
        Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
        return bytes;
    }
}
