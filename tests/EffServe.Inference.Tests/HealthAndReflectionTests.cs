using EffServe.Inference.Tests.Support;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Reflection.V1Alpha;

namespace EffServe.Inference.Tests;

/// <summary>grpc.health.v1 and server reflection, as load balancers and tools like grpcurl use them.</summary>
public sealed class HealthAndReflectionTests : IClassFixture<DigitsServerFixture>
{
    private readonly DigitsServerFixture _server;

    public HealthAndReflectionTests(DigitsServerFixture server)
    {
        _server = server;
    }

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData("")]
    [InlineData("digits")]
    public async Task HealthCheck_ServerOrLoadedModel_Serving(string service)
    {
        var client = new Health.HealthClient(_server.Server.Channel);

        var response = await client.CheckAsync(new HealthCheckRequest { Service = service }, cancellationToken: Ct);

        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, response.Status);
    }

    [Fact]
    public async Task HealthCheck_UnknownService_NotFound()
    {
        var client = new Health.HealthClient(_server.Server.Channel);

        await RpcAssert.FailsAsync(StatusCode.NotFound, () => client.CheckAsync(new HealthCheckRequest { Service = "mnist" }, cancellationToken: Ct).ResponseAsync);
    }

    [Fact]
    public async Task ServerReflection_ListServices_IncludesInferenceZooAndHealth()
    {
        var client = new ServerReflection.ServerReflectionClient(_server.Server.Channel);
        using var call = client.ServerReflectionInfo(cancellationToken: Ct);

        await call.RequestStream.WriteAsync(new ServerReflectionRequest { ListServices = "" }, Ct);
        await call.RequestStream.CompleteAsync();
        Assert.True(await call.ResponseStream.MoveNext(Ct));
        var services = call.ResponseStream.Current.ListServicesResponse.Service.Select(s => s.Name).ToList();

        Assert.Contains("inference.GRPCInferenceService", services);
        Assert.Contains("effserve.v1.ZooService", services);
        Assert.Contains("grpc.health.v1.Health", services);
        Assert.False(await call.ResponseStream.MoveNext(Ct));
    }

    [Fact]
    public async Task ServerReflection_FileContainingSymbol_DescribesInferenceService()
    {
        var client = new ServerReflection.ServerReflectionClient(_server.Server.Channel);
        using var call = client.ServerReflectionInfo(cancellationToken: Ct);

        await call.RequestStream.WriteAsync(new ServerReflectionRequest { FileContainingSymbol = "inference.GRPCInferenceService" }, Ct);
        await call.RequestStream.CompleteAsync();
        Assert.True(await call.ResponseStream.MoveNext(Ct));
        var files = call.ResponseStream.Current.FileDescriptorResponse.FileDescriptorProto
            .Select(bytes => Google.Protobuf.Reflection.FileDescriptorProto.Parser.ParseFrom(bytes))
            .ToList();

        // The service's file comes with the files it imports, so that a reflection client can decode every message.
        var file = Assert.Single(files, f => f.Name == "inference/grpc_service.proto");
        Assert.Contains(files, f => f.Name == "inference/model_config.proto" && f.Package == "inference");
        var service = Assert.Single(file.Service, s => s.Name == "GRPCInferenceService");
        Assert.Contains(service.Method, m => m.Name == "ModelInfer");
        Assert.Contains(service.Method, m => m.Name == "ModelStreamInfer" && m.ClientStreaming && m.ServerStreaming);
    }
}
