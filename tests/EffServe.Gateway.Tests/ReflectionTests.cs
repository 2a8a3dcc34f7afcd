using EffServe.Gateway.Tests.Support;
using EffServe.Testing;
using Grpc.Core;
using V1 = Grpc.Reflection.V1;
using V1Alpha = Grpc.Reflection.V1Alpha;

namespace EffServe.Gateway.Tests;

/// <summary>
/// Server reflection through the gateway, as grpcurl uses it: both protocol versions list the
/// services a client can call through the gateway and describe ModelInfer well enough to call it;
/// with the door closed, reflection needs credentials like the rest of the model surface.
/// </summary>
[Collection(nameof(OnSharedReplicas))]
public sealed class ReflectionTests(SharedReplicas shared)
{
    private static readonly string[] s_services = ["inference.GRPCInferenceService", "effserve.v1.ZooService", "effserve.v1.JobService", "grpc.health.v1.Health"];

    [Fact]
    public async Task ListServices_BothVersions_NameEveryServiceCallableThroughTheGateway()
    {
        var v1 = new V1.ServerReflection.ServerReflectionClient(shared.Gateway.Channel);
        using var call = v1.ServerReflectionInfo(cancellationToken: Rpc.Ct);
        await call.RequestStream.WriteAsync(new V1.ServerReflectionRequest { ListServices = "" }, Rpc.Ct);
        await call.RequestStream.CompleteAsync();
        Assert.True(await call.ResponseStream.MoveNext(Rpc.Ct));
        var listed = call.ResponseStream.Current.ListServicesResponse.Service.Select(s => s.Name).ToList();

        var alpha = new V1Alpha.ServerReflection.ServerReflectionClient(shared.Gateway.Channel);
        using var alphaCall = alpha.ServerReflectionInfo(cancellationToken: Rpc.Ct);
        await alphaCall.RequestStream.WriteAsync(new V1Alpha.ServerReflectionRequest { ListServices = "" }, Rpc.Ct);
        await alphaCall.RequestStream.CompleteAsync();
        Assert.True(await alphaCall.ResponseStream.MoveNext(Rpc.Ct));
        var alphaListed = alphaCall.ResponseStream.Current.ListServicesResponse.Service.Select(s => s.Name).ToList();

        Assert.All(s_services, s => Assert.Contains(s, listed));
        Assert.All(s_services, s => Assert.Contains(s, alphaListed));
    }

    [Fact]
    public async Task FileContainingSymbol_DescribesModelInfer()
    {
        var client = new V1.ServerReflection.ServerReflectionClient(shared.Gateway.Channel);
        using var call = client.ServerReflectionInfo(cancellationToken: Rpc.Ct);

        await call.RequestStream.WriteAsync(new V1.ServerReflectionRequest { FileContainingSymbol = "inference.GRPCInferenceService" }, Rpc.Ct);
        await call.RequestStream.CompleteAsync();
        Assert.True(await call.ResponseStream.MoveNext(Rpc.Ct));
        var files = call.ResponseStream.Current.FileDescriptorResponse.FileDescriptorProto
            .Select(bytes => Google.Protobuf.Reflection.FileDescriptorProto.Parser.ParseFrom(bytes))
            .ToList();

        var service = files.SelectMany(f => f.Service).Single(s => s.Name == "GRPCInferenceService");
        var infer = Assert.Single(service.Method, m => m.Name == "ModelInfer");
        Assert.Equal(".inference.ModelInferRequest", infer.InputType);
        Assert.Contains(files.SelectMany(f => f.MessageType), m => m.Name == "ModelInferRequest");
    }

    [Fact]
    public async Task ClosedDoor_ReflectionWithoutCredentials_Unauthenticated()
    {
        var settings = new GatewaySettings().Model(Digits.Model, shared.First.Address).Set("Door:ApiKeys:k-reflect", "team-a");
        await using var gateway = await GatewayServer.StartAsync(settings.ToDictionary());
        var client = new V1.ServerReflection.ServerReflectionClient(gateway.Channel);

        using var call = client.ServerReflectionInfo(cancellationToken: Rpc.Ct);
        var refused = await Assert.ThrowsAsync<RpcException>(async () =>
        {
            await call.RequestStream.WriteAsync(new V1.ServerReflectionRequest { ListServices = "" }, Rpc.Ct);
            await call.ResponseStream.MoveNext(Rpc.Ct);
        });

        using var admitted = client.ServerReflectionInfo(new Metadata { { "effserve-api-key", "k-reflect" } }, cancellationToken: Rpc.Ct);
        await admitted.RequestStream.WriteAsync(new V1.ServerReflectionRequest { ListServices = "" }, Rpc.Ct);
        await admitted.RequestStream.CompleteAsync();

        Assert.Equal(StatusCode.Unauthenticated, refused.StatusCode);
        Assert.True(await admitted.ResponseStream.MoveNext(Rpc.Ct));
        Assert.Contains("inference.GRPCInferenceService", admitted.ResponseStream.Current.ListServicesResponse.Service.Select(s => s.Name));
    }
}
