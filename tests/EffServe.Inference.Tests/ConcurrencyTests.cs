using EffServe.Contracts.Inference;
using EffServe.Inference.Tests.Support;

namespace EffServe.Inference.Tests;

/// <summary>Many requests at once over one channel: every one answered, each with its own sample's answer.</summary>
public sealed class ConcurrencyTests : IClassFixture<DigitsServerFixture>
{
    private const int Requests = 200;

    private readonly GRPCInferenceService.GRPCInferenceServiceClient _client;

    public ConcurrencyTests(DigitsServerFixture server)
    {
        _client = server.Inference;
    }

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task ModelInfer_200Concurrent_AllSucceedWithTheirSamplesArgMax()
    {
        var expected = await ReferenceArgMaxAsync(Requests);

        // Raw and typed, fp32 and early exit at threshold 1 (which equals fp32), all at once.
        var calls = Enumerable.Range(0, Requests).Select(async i =>
        {
            var request = i % 2 == 0 ? Wire.DigitsEvalRaw(i, 1, id: $"c{i}") : Wire.DigitsTyped(DigitsEval.Images(i, 1), id: $"c{i}");
            if (i % 3 == 0)
            {
                request.Parameters.Add("effserve.exit_threshold", Wire.Real(1.0));
            }

            return (Index: i, Response: await _client.ModelInferAsync(request, cancellationToken: Ct));
        });
        var answers = await Task.WhenAll(calls);

        Assert.Equal(Requests, answers.Length);
        foreach (var (index, response) in answers)
        {
            Assert.Equal($"c{index}", response.Id);
            // Requests waiting together may be joined into one batch (digits' profile shows batching pays).
            Assert.InRange(Wire.Int64Parameter(response, "effserve.batch_size"), 1, 64);
            Assert.Equal(index % 3 == 0 ? "early-exit" : "fp32", Wire.StringParameter(response, "effserve.variant"));
            Assert.True(expected[index] == Wire.ArgMax(Wire.LogitsOf(response))[0], $"Request {index} answered class {Wire.ArgMax(Wire.LogitsOf(response))[0]}, expected {expected[index]}.");
        }
    }

    [Fact]
    public async Task ModelInfer_ConcurrentBatches_EachGetsItsOwnRows()
    {
        var expected = await ReferenceArgMaxAsync(DigitsEval.Count);

        var calls = Enumerable.Range(0, 27).Select(async k =>
        {
            var start = k * 20;
            var response = await _client.ModelInferAsync(Wire.DigitsEvalRaw(start, 20), cancellationToken: Ct);
            return (Start: start, ArgMax: Wire.ArgMax(Wire.LogitsOf(response)));
        });
        var answers = await Task.WhenAll(calls);

        foreach (var (start, argMax) in answers)
        {
            Assert.Equal(expected.AsSpan(start, 20).ToArray(), argMax);
        }
    }

    /// <summary>The fp32 argmax of the first <paramref name="count"/> evaluation samples, asked one batch at a time.</summary>
    private async Task<int[]> ReferenceArgMaxAsync(int count)
    {
        var result = new List<int>(count);
        for (var start = 0; start < count; start += 60)
        {
            var response = await _client.ModelInferAsync(Wire.DigitsEvalRaw(start, Math.Min(60, count - start)), cancellationToken: Ct);
            result.AddRange(Wire.ArgMax(Wire.LogitsOf(response)));
        }

        return [.. result];
    }
}
