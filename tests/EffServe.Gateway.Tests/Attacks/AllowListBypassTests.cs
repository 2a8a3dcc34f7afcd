using System.Buffers.Binary;
using System.Text;
using EffServe.Contracts.Inference;
using EffServe.Contracts.Jobs;
using EffServe.Gateway.Routing;
using EffServe.Gateway.Tests.Support;
using Grpc.Core;
using Grpc.Net.Client;

namespace EffServe.Gateway.Tests.Attacks;

/// <summary>
/// Allow-list bypass where one replica serves two models: a tenant allowed "open" only names
/// "open" in the routing header and "secret" in the message (ModelInfer, ModelMetadata,
/// SubmitJob), names "secret" outright, and sends a ModelStreamInfer whose second message names
/// "secret". Each is refused, and the replica never receives a whole message naming "secret".
/// </summary>
[Collection(nameof(UnderAttack))]
public sealed class AllowListBypassTests(AttackReplicas replicas)
{
    private const string Open = "open";
    private const string Secret = "secret";
    private const string MalloryKey = "key-mallory";

    [Fact]
    public async Task HeaderNamesAllowedModel_MessageNamesAnother_RefusedAndNeverForwarded()
    {
        await using var replica = await FakeBackend.StartAsync(Open, FakeAnswer.Metadata, Secret);
        var refusals = new List<(string What, RpcException Error)>();
        RpcException? stream = null;
        RpcException? realStream = null;
        await AttackHarness.RunAsync(
            replicas,
            async attack =>
            {
                await attack.Gateway.WaitUntilServingAsync(Open);
                await attack.Gateway.WaitUntilServingAsync(Secret);
                using var channel = GrpcChannel.ForAddress(attack.Address);
                var inference = new GRPCInferenceService.GRPCInferenceServiceClient(channel);
                var jobs = new JobService.JobServiceClient(channel);
                var steer = new Metadata { { "effserve-api-key", MalloryKey }, { CallRouter.ModelHeader, Open } };
                var plain = new Metadata { { "effserve-api-key", MalloryKey } };

                // The allowed model works for this tenant: the refusals below are about the model.
                var allowed = await inference.ModelMetadataAsync(new ModelMetadataRequest { Name = Open }, plain, deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);
                Assert.Equal(Open, allowed.Name);

                async Task RefusedAsync(string what, Func<Task> call) => refusals.Add((what, await Assert.ThrowsAsync<RpcException>(call)));
                await RefusedAsync("ModelInfer header open, message secret", () => inference.ModelInferAsync(Digits.Request(0, model: Secret), steer, deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct).ResponseAsync);
                await RefusedAsync("ModelMetadata header open, message secret", () => inference.ModelMetadataAsync(new ModelMetadataRequest { Name = Secret }, steer, deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct).ResponseAsync);
                await RefusedAsync("SubmitJob header open, message secret", () => jobs.SubmitJobAsync(new SubmitJobRequest { ModelName = Secret }, steer, deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct).ResponseAsync);
                await RefusedAsync("ModelInfer message secret", () => inference.ModelInferAsync(Digits.Request(0, model: Secret), plain, deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct).ResponseAsync);

                using var call = inference.ModelStreamInfer(steer, deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);
                await call.RequestStream.WriteAsync(Digits.Request(0, model: Open), Rpc.Ct);
                try
                {
                    await call.RequestStream.WriteAsync(Digits.Request(1, model: Secret), Rpc.Ct);
                    await call.RequestStream.CompleteAsync();
                }
                catch (RpcException)
                {
                    // the call may already have failed
                }
                catch (InvalidOperationException)
                {
                    // the call may already have completed
                }

                stream = await Assert.ThrowsAsync<RpcException>(async () =>
                {
                    while (await call.ResponseStream.MoveNext(Rpc.Ct))
                    {
                    }
                });
                await Eventually.UntilAsync(() => replica.Calls.Any(c => c.Path.EndsWith("/ModelStreamInfer", StringComparison.Ordinal)), "the replica saw the stream end");

                // The same on a real replica, whose answer to the first message has already begun.
                using var real = inference.ModelStreamInfer(plain, deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);
                await real.RequestStream.WriteAsync(Digits.Request(0), Rpc.Ct);
                Assert.True(await real.ResponseStream.MoveNext(Rpc.Ct));
                try
                {
                    await real.RequestStream.WriteAsync(Digits.Request(1, model: Secret), Rpc.Ct);
                    await real.RequestStream.CompleteAsync();
                }
                catch (Exception e) when (e is RpcException or InvalidOperationException)
                {
                    // the call may already have ended
                }

                realStream = await Assert.ThrowsAsync<RpcException>(async () =>
                {
                    while (await real.ResponseStream.MoveNext(Rpc.Ct))
                    {
                    }
                });
            },
            door: true,
            configure: s => s
                .Model(Open, replica.Address)
                .Model(Secret, replica.Address)
                .AllowedTenants(Open, "mallory")
                .AllowedTenants(Secret, AttackHarness.WellBehavedTenant)
                .Set($"Door:ApiKeys:{MalloryKey}", "mallory"));

        foreach (var (what, error) in refusals)
        {
            AttackContext.Report($"{what}: {error.StatusCode} {error.Status.Detail}");
        }

        AttackContext.Report($"stream naming secret second: {stream!.StatusCode} {stream.Status.Detail}");
        AttackContext.Report($"on a real replica, stream naming secret second: {realStream!.StatusCode} {realStream.Status.Detail}");
        AttackContext.Report($"the replica received: {string.Join("; ", replica.Calls.Select(c => $"{c.Path} {c.Body.Length} bytes{(c.Complete ? "" : " (ended early)")}"))}");

        Assert.All(refusals.Take(3), r => Assert.Equal(StatusCode.InvalidArgument, r.Error.StatusCode));
        Assert.All(refusals.Take(3), r => Rpc.AssertMentions(r.Error.Status.Detail, CallRouter.ModelHeader, Secret));
        Assert.Equal(StatusCode.PermissionDenied, refusals[3].Error.StatusCode);
        Assert.Equal(StatusCode.InvalidArgument, stream.StatusCode); // the replica had not answered yet: the caller is told why
        Rpc.AssertMentions(stream.Status.Detail, $"names model '{Secret}'");
        Assert.NotEqual(StatusCode.OK, realStream.StatusCode);
        Assert.All(replica.Calls, c => Assert.False(WholeMessages(c.Body).Any(NamesSecret), $"{c.Path} reached the replica with a whole message naming '{Secret}'"));
        // The stream reached the replica with at most its first message whole: the refused second
        // message made the gateway reset the upstream stream, which can overtake the first
        // message's last bytes.
        Assert.Contains(replica.Calls, c => c.Path.EndsWith("/ModelStreamInfer", StringComparison.Ordinal) && WholeMessages(c.Body).Count <= 1);
    }

    private static bool NamesSecret(byte[] message) => Encoding.UTF8.GetString(message).Contains(Secret, StringComparison.Ordinal);

    /// <summary>The whole gRPC messages in a request body (a message cut short is left out).</summary>
    private static List<byte[]> WholeMessages(byte[] body)
    {
        var messages = new List<byte[]>();
        var at = 0;
        while (body.Length - at >= 5)
        {
            var length = (int)BinaryPrimitives.ReadUInt32BigEndian(body.AsSpan(at + 1));
            if (body.Length - at - 5 < length)
            {
                break;
            }

            messages.Add(body.AsSpan(at + 5, length).ToArray());
            at += 5 + length;
        }

        return messages;
    }
}
