using EffServe.Contracts.Inference;
using EffServe.Contracts.Zoo;
using EffServe.Gateway.Tests.Support;
using Grpc.Health.V1;

namespace EffServe.Gateway.Tests;

/// <summary>Server-level calls answered by the gateway itself, some gathered from the replicas.</summary>
[Collection(nameof(OnSharedReplicas))]
public sealed class AggregationTests(SharedReplicas shared)
{
    private readonly GRPCInferenceService.GRPCInferenceServiceClient _client = new(shared.Gateway.Channel);

    [Fact]
    public async Task ServerLive_Always_Live()
    {
        var reply = await _client.ServerLiveAsync(new ServerLiveRequest(), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);

        Assert.True(reply.Live);
    }

    [Fact]
    public async Task ServerReady_EveryModelHasHealthyReplica_Ready()
    {
        var reply = await _client.ServerReadyAsync(new ServerReadyRequest(), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);

        Assert.True(reply.Ready);
    }

    [Fact]
    public async Task ServerMetadata_Gateway_NamesEffServeAndGatewayExtension()
    {
        var reply = await _client.ServerMetadataAsync(new ServerMetadataRequest(), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);

        Assert.Equal("effserve", reply.Name);
        Assert.NotEmpty(reply.Version);
        Assert.Contains("effserve-gateway", reply.Extensions);
    }

    [Fact]
    public async Task RepositoryIndex_Gateway_ListsDigitsReady()
    {
        var reply = await _client.RepositoryIndexAsync(new RepositoryIndexRequest { Ready = true }, deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);

        var digits = Assert.Single(reply.Models);
        Assert.Equal(Digits.Model, digits.Name);
        Assert.Equal("READY", digits.State);
    }

    [Fact]
    public async Task ListModels_Gateway_DigitsWithVariants()
    {
        var reply = await new ZooService.ZooServiceClient(shared.Gateway.Channel).ListModelsAsync(new ListModelsRequest(), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);

        var digits = Assert.Single(reply.Models);
        Assert.Equal(Digits.Model, digits.Name);
        Assert.True(digits.Ready);
        Assert.Equal(["early-exit", "fp16", "fp32", "int8"], digits.Variants.Select(v => v.Name).Order(StringComparer.Ordinal));
        Assert.Equal(Digits.Classes, digits.Labels.Count);
    }

    [Fact]
    public async Task ListModels_AfterRequests_AccountingSummedOverBothReplicas()
    {
        // Several calls, so that (with the balancer spreading them) both replicas have charged some.
        var inference = new GRPCInferenceService.GRPCInferenceServiceClient(shared.Gateway.Channel);
        for (var i = 0; i < 6; i++)
        {
            await inference.ModelInferAsync(Digits.Request(i), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);
        }

        var first = await ListDigitsAsync(shared.First.Channel);
        var second = await ListDigitsAsync(shared.Second.Channel);
        var through = await ListDigitsAsync(shared.Gateway.Channel);

        // Other tests of the collection run one after another, so nothing is charged in between.
        Assert.Equal(first.Accounting.Requests + second.Accounting.Requests, through.Accounting.Requests);
        Assert.Equal(first.Accounting.EnergyJoules + second.Accounting.EnergyJoules, through.Accounting.EnergyJoules, 12);
        Assert.Equal(first.Accounting.CostUsd + second.Accounting.CostUsd, through.Accounting.CostUsd, 15);
        Assert.Equal("modelled", through.Accounting.EnergySource);
    }

    [Fact]
    public void Combine_MixedSources_MixedAndSummed()
    {
        ZooModel Listing(string source, ulong requests) => new() { Name = Digits.Model, Ready = true, Accounting = new AccountingTotals { Requests = requests, EnergyJoules = requests, EnergySource = source } };

        var combined = Services.GatewayZooService.Combine(Digits.Model, [Listing("measured", 2), Listing("modelled", 3), Listing("", 0)]);

        Assert.Equal(5UL, combined.Accounting.Requests);
        Assert.Equal(5.0, combined.Accounting.EnergyJoules);
        Assert.Equal("mixed", combined.Accounting.EnergySource);
    }

    [Fact]
    public void Combine_NoReplicaAnswered_NotReady()
    {
        var combined = Services.GatewayZooService.Combine(Digits.Model, []);

        Assert.False(combined.Ready);
        Assert.Equal(Digits.Model, combined.Name);
    }

    private static async Task<ZooModel> ListDigitsAsync(Grpc.Net.Client.GrpcChannel channel)
    {
        var reply = await new ZooService.ZooServiceClient(channel).ListModelsAsync(new ListModelsRequest { Name = Digits.Model }, deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);
        return Assert.Single(reply.Models);
    }

    [Fact]
    public async Task ListModels_UnknownName_NotFoundNamingDigits()
    {
        var client = new ZooService.ZooServiceClient(shared.Gateway.Channel);

        await Rpc.FailsAsync(Grpc.Core.StatusCode.NotFound, () => client.ListModelsAsync(new ListModelsRequest { Name = "nope" }, deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct).ResponseAsync, "nope", Digits.Model);
    }

    [Theory]
    [InlineData("")]
    [InlineData(Digits.Model)]
    public async Task HealthCheck_ReplicasServing_Serving(string service)
    {
        var reply = await new Health.HealthClient(shared.Gateway.Channel).CheckAsync(new HealthCheckRequest { Service = service }, deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);

        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, reply.Status);
    }
}
