using EffServe.Contracts.Zoo;
using EffServe.Inference.Tests.Support;
using Grpc.Core;

namespace EffServe.Inference.Tests;

/// <summary>effserve.v1.ZooService.ListModels: the models, their variants and what happened to each at start-up.</summary>
public sealed class ZooServiceTests : IClassFixture<DigitsServerFixture>, IClassFixture<FixtureZooServerFixture>
{
    private readonly ZooService.ZooServiceClient _digits;
    private readonly ZooService.ZooServiceClient _fixtures;

    public ZooServiceTests(DigitsServerFixture digits, FixtureZooServerFixture fixtures)
    {
        _digits = digits.Zoo;
        _fixtures = fixtures.Zoo;
    }

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task ListModels_DemoZoo_DescribesDigitsAndItsVariants()
    {
        var response = await _digits.ListModelsAsync(new ListModelsRequest(), cancellationToken: Ct);

        var digits = Assert.Single(response.Models);
        Assert.Equal((Wire.Digits, "1", "image-classification"), (digits.Name, digits.Version, digits.Task));
        Assert.False(string.IsNullOrWhiteSpace(digits.Description));
        Assert.Equal(64, digits.MaxBatchSize);
        Assert.True(digits.Ready);
        Assert.Equal("fp32", digits.DefaultVariant);
        Assert.Equal(["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"], digits.Labels);
        Assert.False(string.IsNullOrWhiteSpace(digits.Revision));
        var input = Assert.Single(digits.Inputs);
        Assert.Equal((Wire.Image, "FP32"), (input.Name, input.Datatype));
        Assert.Equal([-1L, 1, 8, 8], input.Shape);
        Assert.Equal([-1L, 10], Assert.Single(digits.Outputs).Shape);

        Assert.Equal(["fp32", "early-exit", "int8", "fp16"], digits.Variants.Select(v => v.Name));
        Assert.All(digits.Variants.Where(v => v.Provider == "cpu"), v => Assert.Equal(("LOADED", ""), (v.State, v.Reason)));

        // The fp16 variant is for CUDA: this CPU build skips it and says why.
        var fp16 = digits.Variants.Single(v => v.Name == "fp16");
        Assert.Equal(("cuda", "SKIPPED"), (fp16.Provider, fp16.State));
        Assert.Contains("cuda", fp16.Reason, StringComparison.Ordinal);
        var fp32 = digits.Variants[0];
        Assert.Equal(("fp32", 1), (fp32.Kind, fp32.Stages));
        Assert.Equal(["fp32/digits.onnx"], fp32.Files);
        Assert.Equal(0, fp32.ExitThreshold);
        var earlyExit = digits.Variants[1];
        Assert.Equal(("early-exit", 3, 0.9), (earlyExit.Kind, earlyExit.Stages, earlyExit.ExitThreshold));
        Assert.Equal(["early-exit/stage1.onnx", "early-exit/stage2.onnx", "early-exit/stage3.onnx"], earlyExit.Files);
    }

    [Fact]
    public async Task ListModels_SameServerTwice_SameRevision()
    {
        var first = await _digits.ListModelsAsync(new ListModelsRequest(), cancellationToken: Ct);
        var second = await _digits.ListModelsAsync(new ListModelsRequest { Name = Wire.Digits }, cancellationToken: Ct);

        Assert.Equal(first.Models[0].Revision, second.Models[0].Revision);
    }

    [Fact]
    public async Task ListModels_Digits_ReportsEvalSampleCount()
    {
        var response = await _digits.ListModelsAsync(new ListModelsRequest { Name = Wire.Digits }, cancellationToken: Ct);

        Assert.Equal(DigitsEval.Count, Assert.Single(response.Models).EvalSamples);
    }

    [Fact]
    public async Task ListModels_FixtureZoo_AddGpuSkippedWithCudaReason()
    {
        var response = await _fixtures.ListModelsAsync(new ListModelsRequest(), cancellationToken: Ct);

        Assert.Equal(["add", "typed", "typed-bf16"], response.Models.Select(m => m.Name));
        var add = response.Models[0];
        Assert.True(add.Ready);
        Assert.Equal("cpu", add.DefaultVariant);
        var gpu = Assert.Single(add.Variants, v => v.Name == "gpu");
        Assert.Equal(("SKIPPED", "cuda"), (gpu.State, gpu.Provider));
        Assert.False(string.IsNullOrWhiteSpace(gpu.Reason));
        Assert.Contains("cuda", gpu.Reason, StringComparison.OrdinalIgnoreCase);
        var cpu = Assert.Single(add.Variants, v => v.Name == "cpu");
        Assert.Equal(("LOADED", ""), (cpu.State, cpu.Reason));
        Assert.Empty(add.Labels);
    }

    [Fact]
    public async Task ListModels_NameFilter_ReturnsOnlyThatModel()
    {
        var response = await _fixtures.ListModelsAsync(new ListModelsRequest { Name = "typed-bf16" }, cancellationToken: Ct);

        var model = Assert.Single(response.Models);
        Assert.Equal("typed-bf16", model.Name);
        Assert.Equal("BF16", Assert.Single(model.Inputs).Datatype);
    }

    [Fact]
    public async Task ListModels_UnknownName_NotFoundNamingServedModels()
    {
        await RpcAssert.FailsAsync(
            StatusCode.NotFound,
            () => _fixtures.ListModelsAsync(new ListModelsRequest { Name = "digits" }, cancellationToken: Ct).ResponseAsync,
            "'digits'", "add, typed, typed-bf16");
    }
}
