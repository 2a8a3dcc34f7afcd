using EffServe.Contracts.Inference;
using EffServe.Inference.Tests.Support;
using Grpc.Core;

namespace EffServe.Inference.Tests;

/// <summary>Triton's repository extension: the index, and load/unload, which EffServe does not do at run time.</summary>
public sealed class RepositoryTests : IClassFixture<DigitsServerFixture>, IClassFixture<FixtureZooServerFixture>
{
    private readonly GRPCInferenceService.GRPCInferenceServiceClient _digits;
    private readonly GRPCInferenceService.GRPCInferenceServiceClient _fixtures;

    public RepositoryTests(DigitsServerFixture digits, FixtureZooServerFixture fixtures)
    {
        _digits = digits.Inference;
        _fixtures = fixtures.Inference;
    }

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task RepositoryIndex_DemoZoo_ListsDigitsReady(bool readyOnly)
    {
        var response = await _digits.RepositoryIndexAsync(new RepositoryIndexRequest { Ready = readyOnly }, cancellationToken: Ct);

        var model = Assert.Single(response.Models);
        Assert.Equal((Wire.Digits, "1", "READY", ""), (model.Name, model.Version, model.State, model.Reason));
    }

    [Fact]
    public async Task RepositoryIndex_FixtureZoo_ListsEveryModelReady()
    {
        var response = await _fixtures.RepositoryIndexAsync(new RepositoryIndexRequest(), cancellationToken: Ct);

        Assert.Equal(["add", "typed", "typed-bf16"], response.Models.Select(m => m.Name));
        Assert.All(response.Models, m => Assert.Equal("READY", m.State));
    }

    [Fact]
    public async Task RepositoryModelLoad_Any_Unimplemented()
    {
        await RpcAssert.FailsAsync(
            StatusCode.Unimplemented,
            () => _digits.RepositoryModelLoadAsync(new RepositoryModelLoadRequest { ModelName = Wire.Digits }, cancellationToken: Ct).ResponseAsync,
            "Loading models at run time is not supported");
    }

    [Fact]
    public async Task RepositoryModelUnload_Any_Unimplemented()
    {
        await RpcAssert.FailsAsync(
            StatusCode.Unimplemented,
            () => _digits.RepositoryModelUnloadAsync(new RepositoryModelUnloadRequest { ModelName = Wire.Digits }, cancellationToken: Ct).ResponseAsync,
            "Unloading models at run time is not supported");
    }
}
