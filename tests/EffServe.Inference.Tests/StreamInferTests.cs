using EffServe.Contracts.Inference;
using EffServe.Inference.Tests.Support;
using Grpc.Core;

namespace EffServe.Inference.Tests;

/// <summary>ModelStreamInfer: many requests over one stream; a bad one answers with its error and the stream goes on.</summary>
public sealed class StreamInferTests : IClassFixture<DigitsServerFixture>
{
    private readonly GRPCInferenceService.GRPCInferenceServiceClient _client;

    public StreamInferTests(DigitsServerFixture server)
    {
        _client = server.Inference;
    }

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task ModelStreamInfer_FiveRequestsOneInvalid_FiveAnswersMatchedById()
    {
        var requests = Enumerable.Range(0, 5).Select(i => Wire.DigitsEvalRaw(i * 10, 1 + i, id: $"stream-{i}")).ToList();
        requests[2].Inputs[0].Datatype = "INT32";

        var answers = await StreamAsync(requests);

        Assert.Equal(5, answers.Count);
        var byId = answers.ToDictionary(a => a.InferResponse.Id);
        Assert.Equal(requests.Select(r => r.Id).Order(), byId.Keys.Order());

        var failed = byId["stream-2"];
        Assert.Contains("InvalidArgument", failed.ErrorMessage, StringComparison.Ordinal);
        Assert.Contains("Invalid request for model 'digits': input 'image' has datatype INT32 but the model expects FP32", failed.ErrorMessage, StringComparison.Ordinal);
        Assert.Equal(Wire.Digits, failed.InferResponse.ModelName);
        Assert.Empty(failed.InferResponse.Outputs);

        foreach (var i in new[] { 0, 1, 3, 4 })
        {
            var answer = byId[$"stream-{i}"];
            Assert.Equal("", answer.ErrorMessage);
            var output = Assert.Single(answer.InferResponse.Outputs);
            Assert.Equal([1L + i, 10], output.Shape);
            var expected = Wire.LogitsOf(await _client.ModelInferAsync(Wire.DigitsEvalRaw(i * 10, 1 + i), cancellationToken: Ct));
            Assert.Equal(expected, Wire.LogitsOf(answer.InferResponse));
            Assert.Equal("fp32", Wire.StringParameter(answer.InferResponse, "effserve.variant"));
        }
    }

    [Fact]
    public async Task ModelStreamInfer_UnknownModelInStream_AnswersNotFoundAndGoesOn()
    {
        var good = Wire.DigitsEvalRaw(0, 1, id: "good");
        var unknown = Wire.DigitsEvalRaw(0, 1, id: "unknown");
        unknown.ModelName = "mnist";

        var answers = await StreamAsync([unknown, good]);

        var byId = answers.ToDictionary(a => a.InferResponse.Id);
        Assert.Contains("NotFound", byId["unknown"].ErrorMessage, StringComparison.Ordinal);
        Assert.Contains("'mnist'", byId["unknown"].ErrorMessage, StringComparison.Ordinal);
        Assert.Equal("", byId["good"].ErrorMessage);
        Assert.Single(byId["good"].InferResponse.Outputs);
    }

    [Fact]
    public async Task ModelStreamInfer_RequestFailingUnexpectedly_StillAnswered()
    {
        var requests = Enumerable.Range(0, 5).Select(i => Wire.DigitsEvalRaw(i, 1, id: $"odd-{i}")).ToList();
        requests[1].Parameters.Add("timeout", Wire.Integer(long.MaxValue));

        var answers = await StreamAsync(requests);

        Assert.Equal(requests.Select(r => r.Id).Order(), answers.Select(a => a.InferResponse.Id).Order());
        var odd = answers.Single(a => a.InferResponse.Id == "odd-1");
        Assert.True(odd.ErrorMessage.Length > 0 || odd.InferResponse.Outputs.Count == 1, "The request must be answered with outputs or an error.");
    }

    [Fact]
    public async Task ModelStreamInfer_ManyRequests_AllAnswered()
    {
        var requests = Enumerable.Range(0, 100).Select(i => Wire.DigitsEvalRaw(i, 1, id: $"many-{i}")).ToList();

        var answers = await StreamAsync(requests);

        Assert.Equal(100, answers.Count);
        Assert.All(answers, a => Assert.Equal("", a.ErrorMessage));
        var byId = answers.ToDictionary(a => a.InferResponse.Id);
        var batched = Wire.ArgMax(Wire.LogitsOf(await _client.ModelInferAsync(Wire.DigitsEvalRaw(0, 50), cancellationToken: Ct)))
            .Concat(Wire.ArgMax(Wire.LogitsOf(await _client.ModelInferAsync(Wire.DigitsEvalRaw(50, 50), cancellationToken: Ct))))
            .ToArray();
        for (var i = 0; i < 100; i++)
        {
            Assert.Equal(batched[i], Wire.ArgMax(Wire.LogitsOf(byId[$"many-{i}"].InferResponse))[0]);
        }
    }

    [Fact]
    public async Task ModelStreamInfer_NoRequests_EndsWithoutAnswers()
    {
        var answers = await StreamAsync([]);

        Assert.Empty(answers);
    }

    private async Task<List<ModelStreamInferResponse>> StreamAsync(IReadOnlyList<ModelInferRequest> requests)
    {
        using var call = _client.ModelStreamInfer(cancellationToken: Ct);
        var reading = ReadAllAsync(call.ResponseStream);
        foreach (var request in requests)
        {
            await call.RequestStream.WriteAsync(request, Ct);
        }

        await call.RequestStream.CompleteAsync();
        return await reading;
    }

    private static async Task<List<ModelStreamInferResponse>> ReadAllAsync(IAsyncStreamReader<ModelStreamInferResponse> stream)
    {
        var answers = new List<ModelStreamInferResponse>();
        await foreach (var answer in stream.ReadAllAsync(Ct))
        {
            answers.Add(answer);
        }

        return answers;
    }
}
