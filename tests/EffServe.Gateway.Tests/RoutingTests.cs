using EffServe.Contracts.Inference;
using EffServe.Gateway.Forwarding;
using EffServe.Gateway.Routing;
using EffServe.Gateway.Tests.Support;
using EffServe.Testing;
using Grpc.Core;

namespace EffServe.Gateway.Tests;

/// <summary>Model-level calls reach a replica of the model they name, by header or by the first message.</summary>
[Collection(nameof(OnSharedReplicas))]
public sealed class RoutingTests(SharedReplicas shared)
{
    private readonly GRPCInferenceService.GRPCInferenceServiceClient _client = new(shared.Gateway.Channel);

    private static Metadata ModelHeader(string model) => new() { { CallRouter.ModelHeader, model } };

    [Fact]
    public async Task ModelInfer_NoHeader_RoutedByFirstMessage()
    {
        var reply = await _client.ModelInferAsync(Digits.Request(3), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);

        Assert.Equal(Digits.Model, reply.ModelName);
        Assert.Equal("sample-3", reply.Id);
        Assert.Equal(Digits.Classes, Digits.LogitCount(reply));
    }

    [Fact]
    public async Task ModelInfer_ModelHeader_Routed()
    {
        var reply = await _client.ModelInferAsync(Digits.Request(4), ModelHeader(Digits.Model), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);

        Assert.Equal(Digits.Model, reply.ModelName);
        Assert.Equal(Digits.Classes, Digits.LogitCount(reply));
    }

    [Fact]
    public async Task ModelInfer_Batch_ResultsMatchAskingReplicaDirectly()
    {
        var request = Digits.Request(10, batch: 8);

        var through = await _client.ModelInferAsync(request, deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);
        var direct = await new GRPCInferenceService.GRPCInferenceServiceClient(shared.First.Channel).ModelInferAsync(request, deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);

        Assert.Equal(direct.RawOutputContents[0].ToByteArray(), through.RawOutputContents[0].ToByteArray());
    }

    /// <summary>
    /// The header decides where a call goes, even when the message names another model: the
    /// gateway does not read the body when the header is there (that is the fast path). The replica
    /// it reaches then judges the message by its own field, so a disagreeing header is the client's bug.
    /// </summary>
    [Fact]
    public async Task ModelMetadata_HeaderNamesOtherModelThanBody_RefusedBeforeAnyReplica()
    {
        // The model is the message's: a header naming another model is refused, so no header can
        // steer a call to a replica of a model its message does not name (or past an allow-list).
        await using var fake = await FakeBackend.StartAsync("echo", FakeAnswer.Metadata);
        var settings = new GatewaySettings().Model(Digits.Model, shared.First.Address).Model("echo", fake.Address);
        await using var gateway = await GatewayServer.StartAsync(settings.ToDictionary());
        await gateway.WaitUntilServingAsync("");
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(gateway.Channel);

        await Rpc.FailsAsync(StatusCode.InvalidArgument, () => client.ModelMetadataAsync(new ModelMetadataRequest { Name = Digits.Model }, ModelHeader("echo"), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct).ResponseAsync, "'echo'", "'digits'");
        await Rpc.FailsAsync(StatusCode.InvalidArgument, () => client.ModelMetadataAsync(new ModelMetadataRequest { Name = "echo" }, ModelHeader(Digits.Model), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct).ResponseAsync, "'echo'", "'digits'");
        var agreed = await client.ModelMetadataAsync(new ModelMetadataRequest { Name = "echo" }, ModelHeader("echo"), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);

        Assert.Equal(FakeBackend.FakePlatform, agreed.Platform);
        var call = Assert.Single(fake.Calls);
        Assert.Null(call.ModelHeader); // the routing header stays in the gateway
    }

    [Fact]
    public async Task ModelMetadata_NoHeader_RoutedToDigits()
    {
        var reply = await _client.ModelMetadataAsync(new ModelMetadataRequest { Name = Digits.Model }, deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);

        Assert.Equal(Digits.Model, reply.Name);
        Assert.Equal("image", Assert.Single(reply.Inputs).Name);
        Assert.Equal("logits", Assert.Single(reply.Outputs).Name);
    }

    [Fact]
    public async Task ModelReady_NoHeader_Ready()
    {
        var reply = await _client.ModelReadyAsync(new ModelReadyRequest { Name = Digits.Model }, deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);

        Assert.True(reply.Ready);
    }

    [Fact]
    public async Task ModelConfig_NoHeader_RoutedByName()
    {
        var reply = await _client.ModelConfigAsync(new ModelConfigRequest { Name = Digits.Model }, deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);

        Assert.Equal(Digits.Model, reply.Config.Name);
        Assert.Single(reply.Config.Input);
    }

    [Fact]
    public async Task ModelConfig_UnknownModel_NotFoundNamingModels()
    {
        await Rpc.FailsAsync(StatusCode.NotFound, () => _client.ModelConfigAsync(new ModelConfigRequest { Name = "nope" }, deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct).ResponseAsync, "'nope'", Digits.Model);
    }

    [Fact]
    public async Task ModelStatistics_Name_SumOfBothReplicas()
    {
        await _client.ModelInferAsync(Digits.Request(0, batch: 3), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);
        var direct = await Task.WhenAll(Digits.InferenceCountAsync(shared.First), Digits.InferenceCountAsync(shared.Second));

        var reply = await _client.ModelStatisticsAsync(new ModelStatisticsRequest { Name = Digits.Model }, deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);

        var stats = Assert.Single(reply.ModelStats);
        Assert.Equal(Digits.Model, stats.Name);
        Assert.Equal(direct[0] + direct[1], stats.InferenceCount);
    }

    [Fact]
    public async Task ModelStatistics_NoName_EveryModel()
    {
        var reply = await _client.ModelStatisticsAsync(new ModelStatisticsRequest(), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);

        Assert.Equal(Digits.Model, Assert.Single(reply.ModelStats).Name);
    }

    [Fact]
    public async Task ModelStatistics_UnknownModel_NotFoundNamingModels()
    {
        await Rpc.FailsAsync(StatusCode.NotFound, () => _client.ModelStatisticsAsync(new ModelStatisticsRequest { Name = "nope" }, deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct).ResponseAsync, "'nope'", Digits.Model);
    }

    [Fact]
    public async Task ModelStreamInfer_NoHeader_RoutedByFirstMessage()
    {
        using var call = _client.ModelStreamInfer(deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);
        for (var i = 0; i < 3; i++)
        {
            await call.RequestStream.WriteAsync(Digits.Request(20 + i), Rpc.Ct);
        }

        await call.RequestStream.CompleteAsync();
        var ids = new List<string>();
        while (await call.ResponseStream.MoveNext(Rpc.Ct))
        {
            var item = call.ResponseStream.Current;
            Assert.Equal("", item.ErrorMessage);
            Assert.Equal(Digits.Classes, Digits.LogitCount(item.InferResponse));
            ids.Add(item.InferResponse.Id);
        }

        Assert.Equal(["sample-20", "sample-21", "sample-22"], ids.Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task ModelInfer_Forwarded_GatewayLogsNoWarning()
    {
        var settings = new GatewaySettings().Model(Digits.Model, shared.First.Address, shared.Second.Address);
        await using var gateway = await GatewayServer.StartAsync(settings.ToDictionary());
        await gateway.WaitUntilServingAsync(Digits.Model);
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(gateway.Channel);

        for (var i = 0; i < 5; i++)
        {
            await client.ModelInferAsync(Digits.Request(i), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);
        }

        var warnings = gateway.Logs.Entries.Where(e => e.Level >= Microsoft.Extensions.Logging.LogLevel.Warning).ToList();
        Assert.True(warnings.Count == 0, $"{warnings.Count} warnings for 5 healthy calls, e.g. {warnings.FirstOrDefault()?.Category}: {warnings.FirstOrDefault()?.Message}");
    }

    [Fact]
    public async Task ModelInfer_ManyRequests_BothReplicasReceiveTraffic()
    {
        var before = await Task.WhenAll(Digits.InferenceCountAsync(shared.First), Digits.InferenceCountAsync(shared.Second));

        var calls = Enumerable.Range(0, 64).Select(i => _client.ModelInferAsync(Digits.Request(i), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct).ResponseAsync);
        await Task.WhenAll(calls);

        var after = await Task.WhenAll(Digits.InferenceCountAsync(shared.First), Digits.InferenceCountAsync(shared.Second));
        Assert.True(after[0] > before[0], $"The first replica got no request ({before[0]} → {after[0]}).");
        Assert.True(after[1] > before[1], $"The second replica got no request ({before[1]} → {after[1]}).");
        Assert.Equal(64UL, after[0] - before[0] + (after[1] - before[1]));
    }
}
