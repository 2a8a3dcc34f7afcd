using System.Security.Claims;
using System.Text;
using EffServe.Contracts.Inference;
using EffServe.Contracts.Zoo;
using EffServe.Gateway.Tests.Support;
using EffServe.Testing;
using Grpc.Core;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace EffServe.Gateway.Tests;

/// <summary>
/// The door, on gateways of their own in front of the shared replicas: API keys and HS256 bearer
/// tokens name the tenant, a per-model allow-list admits tenants, and a token bucket limits each.
/// </summary>
[Collection(nameof(OnSharedReplicas))]
public sealed class DoorTests(SharedReplicas shared) : IAsyncLifetime
{
    private const string Issuer = "effserve-tests";
    private const string Audience = "effserve";
    private const string SigningKey = "a signing key of at least thirty-two bytes, for tests";
    private const string AlphaKey = "key-alpha";
    private const string BetaKey = "key-beta";

    private GatewayServer? _gateway;

    private GRPCInferenceService.GRPCInferenceServiceClient Client => new(_gateway!.Channel);

    /// <summary>The door gateway: keys for tenants alpha and beta, bearer tokens, and digits open to alpha only.</summary>
    public async ValueTask InitializeAsync()
    {
        var settings = new GatewaySettings()
            .Model(Digits.Model, shared.First.Address, shared.Second.Address)
            .AllowedTenants(Digits.Model, "alpha")
            .Set($"Door:ApiKeys:{AlphaKey}", "alpha")
            .Set($"Door:ApiKeys:{BetaKey}", "beta")
            .Set("Door:Jwt:Issuer", Issuer)
            .Set("Door:Jwt:Audience", Audience)
            .Set("Door:Jwt:SigningKey", SigningKey)
            .Set("Door:Jwt:TenantClaim", "tenant");
        _gateway = await GatewayServer.StartAsync(settings.ToDictionary());
        await _gateway.WaitUntilServingAsync(Digits.Model);
    }

    public async ValueTask DisposeAsync()
    {
        if (_gateway is not null)
        {
            await _gateway.DisposeAsync();
        }
    }

    private static Metadata ApiKey(string key) => new() { { "effserve-api-key", key } };

    private static Metadata Bearer(string token) => new() { { "authorization", "Bearer " + token } };

    private static string Token(string tenant, string key = SigningKey, double expiresInMinutes = 10)
    {
        var now = TimeProvider.System.GetUtcNow().UtcDateTime;
        var expires = now.AddMinutes(expiresInMinutes);
        var descriptor = new SecurityTokenDescriptor
        {
            Issuer = Issuer,
            Audience = Audience,
            Subject = new ClaimsIdentity([new Claim("tenant", tenant)]),
            IssuedAt = expires.AddMinutes(-20),
            NotBefore = expires.AddMinutes(-20),
            Expires = expires,
            SigningCredentials = new SigningCredentials(new SymmetricSecurityKey(Encoding.UTF8.GetBytes(key)), SecurityAlgorithms.HmacSha256),
        };
        return new JsonWebTokenHandler().CreateToken(descriptor);
    }

    private Task<ModelInferResponse> InferAsync(Metadata? headers) =>
        Client.ModelInferAsync(Digits.Request(0), headers, deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct).ResponseAsync;

    [Fact]
    public async Task ModelInfer_NoCredentials_Unauthenticated()
    {
        await Rpc.FailsAsync(StatusCode.Unauthenticated, () => InferAsync(null), "effserve-api-key");
    }

    [Fact]
    public async Task ModelInfer_WrongApiKey_Unauthenticated()
    {
        await Rpc.FailsAsync(StatusCode.Unauthenticated, () => InferAsync(ApiKey("key-nobody")), "not recognised");
    }

    [Fact]
    public async Task ModelInfer_RightApiKey_Ok()
    {
        var reply = await InferAsync(ApiKey(AlphaKey));

        Assert.Equal(Digits.Classes, Digits.LogitCount(reply));
    }

    [Fact]
    public async Task ModelInfer_ValidToken_Ok()
    {
        var reply = await InferAsync(Bearer(Token("alpha")));

        Assert.Equal(Digits.Classes, Digits.LogitCount(reply));
    }

    [Fact]
    public async Task ModelInfer_ExpiredToken_Unauthenticated()
    {
        await Rpc.FailsAsync(StatusCode.Unauthenticated, () => InferAsync(Bearer(Token("alpha", expiresInMinutes: -10))), "bearer token");
    }

    [Fact]
    public async Task ModelInfer_TokenSignedWithOtherKey_Unauthenticated()
    {
        var token = Token("alpha", key: "another signing key, also thirty-two bytes or more");

        await Rpc.FailsAsync(StatusCode.Unauthenticated, () => InferAsync(Bearer(token)), "bearer token");
    }

    [Fact]
    public async Task ModelInfer_TenantNotAllowed_PermissionDenied()
    {
        await Rpc.FailsAsync(StatusCode.PermissionDenied, () => InferAsync(ApiKey(BetaKey)), "'beta'", "'digits'");
        await Rpc.FailsAsync(StatusCode.PermissionDenied, () => InferAsync(Bearer(Token("beta"))), "'beta'");
    }

    [Fact]
    public async Task RepositoryIndex_NoCredentials_Unauthenticated()
    {
        await Rpc.FailsAsync(StatusCode.Unauthenticated, () => Client.RepositoryIndexAsync(new RepositoryIndexRequest(), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct).ResponseAsync);
        await Rpc.FailsAsync(StatusCode.Unauthenticated, () => Client.ModelStatisticsAsync(new ModelStatisticsRequest(), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct).ResponseAsync);
        await Rpc.FailsAsync(StatusCode.Unauthenticated, () => new ZooService.ZooServiceClient(_gateway!.Channel).ListModelsAsync(new ListModelsRequest(), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct).ResponseAsync);
    }

    [Theory]
    [InlineData("/inference.grpcinferenceservice/repositoryindex")]
    [InlineData("/INFERENCE.GRPCInferenceService/ModelStatistics")]
    [InlineData("/effserve.v1.zooservice/listmodels")]
    [InlineData("/effserve.v1.ZooService/ListModels/")]
    [InlineData("/effserve.v1.ZooService/ListModels/.")]
    [InlineData("/inference.GRPCInferenceService/ModelStatistics/")]
    [InlineData("/inference.GRPCInferenceService/RepositoryIndex/.")]
    [InlineData("/inference.GRPCInferenceService/RepositoryIndex//")]
    [InlineData("/inference.GRPCInferenceService/./RepositoryIndex")]
    [InlineData("/inference.GRPCInferenceService/RepositoryIndex%2F")]
    [InlineData("/inference.GRPCInferenceService/ModelInfer/")]
    public async Task GuardedServerCall_PathNotExactlyTheMethod_AnsweredNothing(string path)
    {
        // gRPC paths are exact: one in another case or with anything after the method is no method
        // the gateway serves, so it is refused before routing could read it as one and the door
        // could miss it. (Kestrel removes a "/./" segment before anyone sees the path; what is left
        // is the method itself, which the door guards.)
        var reply = await RawGrpc.PostAsync(_gateway!.Address, path, RawGrpc.Frame([]));

        if (reply.Status == StatusCode.Unauthenticated)
        {
            Assert.Contains("/./", path, StringComparison.Ordinal);
            return;
        }

        Assert.Equal(StatusCode.Unimplemented, reply.Status);
        Rpc.AssertMentions(reply.Message, "no gRPC method");
    }

    [Fact]
    public async Task RepositoryIndex_RightApiKey_Answered()
    {
        var reply = await Client.RepositoryIndexAsync(new RepositoryIndexRequest(), ApiKey(AlphaKey), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);

        Assert.Equal(Digits.Model, Assert.Single(reply.Models).Name);
    }

    [Fact]
    public async Task ModelMetadata_WithCredentials_CredentialsNotForwarded()
    {
        await using var fake = await FakeBackend.StartAsync("echo", FakeAnswer.Metadata);
        var settings = new GatewaySettings()
            .Model("echo", fake.Address)
            .Set($"Door:ApiKeys:{AlphaKey}", "alpha")
            .Set("Door:Jwt:Issuer", Issuer)
            .Set("Door:Jwt:Audience", Audience)
            .Set("Door:Jwt:SigningKey", SigningKey);
        await using var gateway = await GatewayServer.StartAsync(settings.ToDictionary());
        await gateway.WaitUntilServingAsync("echo");
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(gateway.Channel);

        await client.ModelMetadataAsync(new ModelMetadataRequest { Name = "echo" }, ApiKey(AlphaKey), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);
        await client.ModelMetadataAsync(new ModelMetadataRequest { Name = "echo" }, Bearer(Token("alpha")), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);

        Assert.Equal(2, fake.Calls.Count);
        Assert.All(fake.Calls, call =>
        {
            Assert.False(call.Headers.ContainsKey("effserve-api-key"), "The API key reached the replica.");
            Assert.False(call.Headers.ContainsKey("authorization"), "The bearer token reached the replica.");
        });
    }

    [Fact]
    public async Task ServerLiveAndReady_NoCredentials_Answered()
    {
        var live = await Client.ServerLiveAsync(new ServerLiveRequest(), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);
        var ready = await Client.ServerReadyAsync(new ServerReadyRequest(), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);

        Assert.True(live.Live);
        Assert.True(ready.Ready);
    }

    [Fact]
    public async Task ModelReady_OverRateLimit_ResourceExhaustedWithRetryHint()
    {
        var settings = new GatewaySettings()
            .Model(Digits.Model, shared.First.Address)
            .Set("Door:RequestsPerSecond", "1")
            .Set("Door:Burst", "2");
        await using var gateway = await GatewayServer.StartAsync(settings.ToDictionary());
        await gateway.WaitUntilServingAsync(Digits.Model);
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(gateway.Channel);
        Task<ModelReadyResponse> ReadyAsync() => client.ModelReadyAsync(new ModelReadyRequest { Name = Digits.Model }, deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct).ResponseAsync;

        // The burst of two passes. A third call at once is refused; should the bucket's timer tick
        // between two calls, a later one is, so a few are allowed before the refusal must come.
        Assert.True((await ReadyAsync()).Ready);
        Assert.True((await ReadyAsync()).Ready);
        RpcException? refused = null;
        for (var i = 0; i < 4 && refused is null; i++)
        {
            refused = await Record.ExceptionAsync(ReadyAsync) as RpcException;
        }

        Assert.NotNull(refused);
        Assert.Equal(StatusCode.ResourceExhausted, refused.StatusCode);
        Rpc.AssertMentions(refused.Status.Detail, "rate limit", "retry in");
        var pushback = refused.Trailers.GetValue("grpc-retry-pushback-ms");
        Assert.True(long.TryParse(pushback, out var millis) && millis >= 0, $"grpc-retry-pushback-ms is '{pushback}'.");
        var live = await client.ServerLiveAsync(new ServerLiveRequest(), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);
        Assert.True(live.Live);
    }
}
