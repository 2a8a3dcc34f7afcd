using EffServe.Contracts.Inference;
using EffServe.Inference.Tests.Support;
using InputTensor = EffServe.Contracts.Inference.ModelInferRequest.Types.InferInputTensor;

namespace EffServe.Inference.Tests;

/// <summary>
/// Typed contents round trips for every datatype that has a typed field, on a model generated for
/// the run (<see cref="TypedFieldsServerFixture"/>): the checked-in <c>typed</c> fixture also requires
/// an FP16 input, which cannot travel typed, so no typed request can ever reach it.
/// </summary>
public sealed class TypedContentsTests : IClassFixture<TypedFieldsServerFixture>
{
    private readonly GRPCInferenceService.GRPCInferenceServiceClient _client;

    public TypedContentsTests(TypedFieldsServerFixture server)
    {
        _client = server.Inference;
    }

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task ModelInfer_EveryTypedField_RoundTripsTyped()
    {
        var request = new ModelInferRequest { ModelName = TypedFieldsServerFixture.ModelName };
        foreach (var c in DatatypeSamples.WithTypedField)
        {
            request.Inputs.Add(new InputTensor { Name = c.Input, Datatype = c.Datatype, Shape = { DatatypeCase.Shape }, Contents = c.Typed!.Clone() });
        }

        var response = await _client.ModelInferAsync(request, cancellationToken: Ct);

        Assert.Empty(response.RawOutputContents);
        Assert.Equal(DatatypeSamples.WithTypedField.Count, response.Outputs.Count);
        foreach (var c in DatatypeSamples.WithTypedField)
        {
            var output = Assert.Single(response.Outputs, o => o.Name == c.Output);
            Assert.Equal(c.Datatype, output.Datatype);
            Assert.Equal(DatatypeCase.Shape, output.Shape);
            Assert.Equal(c.Typed, output.Contents);
        }
    }

    [Fact]
    public async Task ModelInfer_EveryTypedFieldRaw_RoundTripsRaw()
    {
        var request = new ModelInferRequest { ModelName = TypedFieldsServerFixture.ModelName };
        foreach (var c in DatatypeSamples.WithTypedField)
        {
            request.Inputs.Add(new InputTensor { Name = c.Input, Datatype = c.Datatype, Shape = { DatatypeCase.Shape } });
            request.RawInputContents.Add(c.Raw);
        }

        var response = await _client.ModelInferAsync(request, cancellationToken: Ct);

        Assert.Equal(DatatypeSamples.WithTypedField.Count, response.Outputs.Count);
        Assert.Equal(response.Outputs.Count, response.RawOutputContents.Count);
        for (var i = 0; i < response.Outputs.Count; i++)
        {
            var c = DatatypeSamples.WithTypedField.Single(d => d.Output == response.Outputs[i].Name);
            Assert.Equal(c.Raw, response.RawOutputContents[i]);
        }
    }
}
