using EffServe.Contracts.Inference;
using EffServe.Inference.Tests.Support;
using Grpc.Core;

namespace EffServe.Inference.Tests;

/// <summary>Deadlines, cancellation and the `timeout` parameter: none of them may break the server.</summary>
public sealed class DeadlineTests : IClassFixture<DigitsServerFixture>
{
    private readonly GRPCInferenceService.GRPCInferenceServiceClient _client;

    public DeadlineTests(DigitsServerFixture server)
    {
        _client = server.Inference;
    }

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task ModelInfer_DeadlineAlreadyPassed_DeadlineExceeded()
    {
        var deadline = TimeProvider.System.GetUtcNow().UtcDateTime.AddSeconds(-1);

        await RpcAssert.FailsAsync(StatusCode.DeadlineExceeded, () => _client.ModelInferAsync(Wire.DigitsEvalRaw(0, 1), deadline: deadline, cancellationToken: Ct).ResponseAsync);

        var next = await _client.ModelInferAsync(Wire.DigitsEvalRaw(0, 1), cancellationToken: Ct);
        Assert.Single(next.Outputs);
    }

    [Fact]
    public async Task ModelInfer_AlreadyCancelled_CancelledAndServerStillAnswers()
    {
        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();

        await RpcAssert.FailsAsync(StatusCode.Cancelled, () => _client.ModelInferAsync(Wire.DigitsEvalRaw(0, 1), cancellationToken: cancelled.Token).ResponseAsync);

        var next = await _client.ModelInferAsync(Wire.DigitsEvalRaw(0, 1), cancellationToken: Ct);
        Assert.Single(next.Outputs);
    }

    [Fact]
    public async Task ModelInfer_CancelledInFlight_EachEndsOkOrCancelledAndServerStillAnswers()
    {
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        var calls = Enumerable.Range(0, 32)
            .Select(i => _client.ModelInferAsync(Wire.DigitsEvalRaw(i, 64 - i), cancellationToken: cancel.Token).ResponseAsync)
            .ToList();
        await cancel.CancelAsync();

        foreach (var call in calls)
        {
            try
            {
                await call;
            }
            catch (RpcException e) when (e.StatusCode == StatusCode.Unavailable && e.Status.DebugException is IOException or System.Net.Http.HttpRequestException)
            {
                // grpc-dotnet now and then reports its own cancelled call as UNAVAILABLE, when the
                // cancellation surfaces as an IOException on the client's side of the stream; the
                // server sent nothing (a status from the server carries no client exception).
            }
            catch (RpcException e)
            {
                Assert.Equal(StatusCode.Cancelled, e.StatusCode);
            }
        }

        var next = await _client.ModelInferAsync(Wire.DigitsEvalRaw(0, 64), cancellationToken: Ct);
        Assert.Equal([64L, 10], Assert.Single(next.Outputs).Shape);
    }

    [Fact]
    public async Task ModelInfer_GenerousDeadline_Succeeds()
    {
        var deadline = TimeProvider.System.GetUtcNow().UtcDateTime.AddMinutes(5);

        var response = await _client.ModelInferAsync(Wire.DigitsEvalRaw(0, 1), deadline: deadline, cancellationToken: Ct);

        Assert.Single(response.Outputs);
    }

    [Fact]
    public async Task ModelInfer_TimeoutParameterZero_MeansNoTimeout()
    {
        var request = Wire.DigitsEvalRaw(0, 1);
        request.Parameters.Add("timeout", Wire.Integer(0));

        var response = await _client.ModelInferAsync(request, cancellationToken: Ct);

        Assert.Single(response.Outputs);
    }

    [Fact]
    public async Task ModelInfer_TimeoutParameterOneMicrosecond_DeadlineExceededOrAnswered()
    {
        // Whether 1 µs passes before the run ends depends on the machine; either outcome is fine,
        // anything else (UNKNOWN, INTERNAL, CANCELLED) is not.
        for (var i = 0; i < 20; i++)
        {
            var request = Wire.DigitsEvalRaw(0, 64);
            request.Parameters.Add("timeout", Wire.Integer(1));

            var outcome = await OutcomeAsync(request);

            Assert.True(outcome is StatusCode.OK or StatusCode.DeadlineExceeded, $"A 1 µs timeout ended in {outcome}.");
        }

        var next = await _client.ModelInferAsync(Wire.DigitsEvalRaw(0, 1), cancellationToken: Ct);
        Assert.Single(next.Outputs);
    }

    [Fact]
    public async Task ModelInfer_TimeoutParameterOfHours_Succeeds()
    {
        var request = Wire.DigitsEvalRaw(0, 1);
        request.Parameters.Add("timeout", Wire.Integer(3_600_000_000));

        var response = await _client.ModelInferAsync(request, cancellationToken: Ct);

        Assert.Single(response.Outputs);
    }

    [Fact]
    public async Task ModelInfer_TimeoutParameterOfYears_SetsNoPracticalLimitAndSucceeds()
    {
        // 10^13 µs is about 116 days: longer than a CancellationTokenSource timer can wait.
        var request = Wire.DigitsEvalRaw(0, 1);
        request.Parameters.Add("timeout", Wire.Integer(10_000_000_000_000));

        var outcome = await OutcomeAsync(request);

        Assert.Equal(StatusCode.OK, outcome);
    }

    [Fact]
    public async Task ModelInfer_TimeoutParameterInt64Max_SetsNoPracticalLimitAndSucceeds()
    {
        var request = Wire.DigitsEvalRaw(0, 1);
        request.Parameters.Add("timeout", Wire.Integer(long.MaxValue));

        var outcome = await OutcomeAsync(request);

        Assert.Equal(StatusCode.OK, outcome);
    }

    private async Task<StatusCode> OutcomeAsync(ModelInferRequest request)
    {
        try
        {
            await _client.ModelInferAsync(request, cancellationToken: Ct);
            return StatusCode.OK;
        }
        catch (RpcException e)
        {
            return e.StatusCode;
        }
    }
}
