using EffServe.Contracts.Inference;
using EffServe.Gateway.Tests.Support;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;

namespace EffServe.Gateway.Tests.Attacks;

/// <summary>
/// A ~60 KB ModelInfer with 30,000 empty inputs, whose every problem a service could list in its
/// answer. The caller gets an error with a message (not a hang), other callers are unharmed, and
/// the replica stays in rotation whatever the size of its answer.
/// </summary>
[Collection(nameof(UnderAttack))]
public sealed class ManyEmptyInputsTests(AttackReplicas replicas)
{
    private const int Inputs = 30_000;

    [Fact]
    public async Task ThirtyThousandEmptyInputs_ShortErrorAndReplicaKept()
    {
        var request = new ModelInferRequest { ModelName = Digits.Model };
        for (var i = 0; i < Inputs; i++)
        {
            request.Inputs.Add(new ModelInferRequest.Types.InferInputTensor());
        }

        var errors = new List<RpcException>();
        await AttackHarness.RunAsync(replicas, async attack =>
        {
            using var channel = GrpcChannel.ForAddress(attack.Address);
            var client = new GRPCInferenceService.GRPCInferenceServiceClient(channel);
            for (var i = 0; i < 10; i++)
            {
                var error = await Assert.ThrowsAsync<RpcException>(() => client.ModelInferAsync(request, deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct).ResponseAsync);
                errors.Add(error);
            }

            AttackContext.Report($"warnings: {AttackHarness.Warnings(attack.Gateway)}");
        });

        var direct = await Assert.ThrowsAsync<RpcException>(() => new GRPCInferenceService.GRPCInferenceServiceClient(replicas.First.Channel).ModelInferAsync(request, deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct).ResponseAsync);
        AttackContext.Report($"straight at a replica: {direct.StatusCode}, message {direct.Status.Detail.Length} chars");
        var first = errors[0];
        AttackContext.Report($"request {request.CalculateSize()} bytes; answers: {string.Join(", ", errors.Select(e => e.StatusCode).Distinct())}; message {first.Status.Detail.Length} chars: {first.Status.Detail[..Math.Min(300, first.Status.Detail.Length)]}");
        Assert.All(errors, e =>
        {
            Assert.NotEqual(StatusCode.DeadlineExceeded, e.StatusCode); // answered, not left to its deadline
            Assert.False(string.IsNullOrWhiteSpace(e.Status.Detail), $"{e.StatusCode} carries no message");
        });

        // Depends on the service's cap on the problems it lists (a change to the inference service
        // on its own branch): the caller is told what is wrong, in a message of reasonable size.
        Assert.All(errors, e => Assert.Equal(StatusCode.InvalidArgument, e.StatusCode));
        Assert.All(errors, e => Assert.True(e.Status.Detail.Length <= 4096, $"The message is {e.Status.Detail.Length} characters long."));
    }
}
