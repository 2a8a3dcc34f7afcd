using System.Text.Json;
using EffServe.Cli.Tests.Infrastructure;
using EffServe.Contracts.Inference;

namespace EffServe.Cli.Tests;

public sealed class ModelsCommandTests
{
    [Fact]
    public async Task Models_ZooServiceOffered_ListsVariantsInATable()
    {
        var zoo = new FakeZooService();
        zoo.Models.Add(Canned.DigitsZooModel());
        await using var server = await FakeOipServer.StartAsync(Canned.DigitsInference(), zoo);

        var result = await CliRun.RunAsync("models", "--endpoint", server.Address);

        TestContext.Current.TestOutputHelper?.WriteLine(result.Stdout);
        Assert.Equal(ExitCodes.Success, result.ExitCode);
        Assert.Equal("", result.Stderr);
        Assert.Contains($"1 model at {server.Address} (via ZooService.ListModels)", result.Stdout, StringComparison.Ordinal);
        Assert.Matches(@"│ digits\s+│ 1\s+│ yes\s+│ image FP32 \[-1, 1, 8, 8\]\s+│ logits FP32 \[-1, 10\]\s+│", result.Stdout);
        Assert.Contains("Variants of digits (10 labels)", result.Stdout, StringComparison.Ordinal);
        Assert.Matches(@"│ fp32 \(default\)\s+│ fp32\s+│ cpu\s+│ LOADED\s+│\s+1 │\s+- │\s+98\.7% │", result.Stdout);
        Assert.Matches(@"│ early-exit\s+│ early-exit\s+│ cpu\s+│ LOADED\s+│\s+3 │\s+0\.9 │\s+- │", result.Stdout);
        Assert.Matches(@"│ fp16-gpu\s+│ fp16\s+│ cuda\s+│ SKIPPED\s+│\s+1 │\s+- │\s+- │", result.Stdout);
        Assert.Contains("no CUDA on this machine", result.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Models_ZooServiceUnimplemented_FallsBackToRepositoryIndex()
    {
        var inference = Canned.DigitsInference(
        [
            new() { Name = "digits", Version = "1", State = "READY" },
            new() { Name = "resnet", Version = "2", State = "UNAVAILABLE", Reason = "failed to load: file missing" },
        ]);
        await using var server = await FakeOipServer.StartAsync(inference, zoo: null);

        var result = await CliRun.RunAsync("models", "--json", "--endpoint", server.Address);

        Assert.Equal(ExitCodes.Success, result.ExitCode);
        using var json = JsonDocument.Parse(result.Stdout);
        Assert.Equal("repository-index", json.RootElement.GetProperty("source").GetString());
        var models = json.RootElement.GetProperty("models").EnumerateArray().ToList();
        Assert.Equal(2, models.Count);
        Assert.Equal("digits", models[0].GetProperty("name").GetString());
        Assert.True(models[0].GetProperty("ready").GetBoolean());
        Assert.Equal("onnx_onnxv1", models[0].GetProperty("platform").GetString());
        Assert.Equal("image", models[0].GetProperty("inputs")[0].GetProperty("name").GetString());
        Assert.False(models[0].TryGetProperty("variants", out _));
        Assert.Equal("resnet", models[1].GetProperty("name").GetString());
        Assert.False(models[1].GetProperty("ready").GetBoolean());
        Assert.Equal("failed to load: file missing", models[1].GetProperty("reason").GetString());
        Assert.Equal(0, models[1].GetProperty("inputs").GetArrayLength());
    }

    [Fact]
    public async Task Models_RepositoryIndexWithoutState_AsksModelReady()
    {
        var inference = Canned.DigitsInference([new RepositoryIndexResponse.Types.ModelIndex { Name = "digits" }]);
        await using var server = await FakeOipServer.StartAsync(inference);

        var result = await CliRun.RunAsync("models", "--endpoint", server.Address);

        TestContext.Current.TestOutputHelper?.WriteLine(result.Stdout);
        Assert.Equal(ExitCodes.Success, result.ExitCode);
        Assert.Contains("(via RepositoryIndex + ModelMetadata)", result.Stdout, StringComparison.Ordinal);
        Assert.Matches(@"│ digits\s+│ 1\s+│ yes\s+│ image FP32 \[-1, 1, 8, 8\]\s+│ logits FP32 \[-1, 10\]\s+│ onnx_onnxv1\s+│", result.Stdout);
        Assert.DoesNotContain("Variants of", result.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Models_NoListingAtAll_SaysTheEndpointOffersNone()
    {
        await using var server = await FakeOipServer.StartAsync(Canned.DigitsInference(index: null));

        var result = await CliRun.RunAsync("models", "--endpoint", server.Address);

        Assert.Equal(ExitCodes.Unsupported, result.ExitCode);
        Assert.Equal("", result.Stdout);
        Assert.StartsWith("error: the endpoint offers no model listing", result.Stderr, StringComparison.Ordinal);
        Assert.Single(result.Stderr.TrimEnd().Split('\n'));
    }

    [Fact]
    public async Task Models_ServerWithoutH2c_SaysHttp2IsNeeded()
    {
        await using var server = await FakeOipServer.StartAsync(Canned.DigitsInference(), protocols: Microsoft.AspNetCore.Server.Kestrel.Core.HttpProtocols.Http1AndHttp2);

        var result = await CliRun.RunAsync("models", "--endpoint", server.Address);

        Assert.Equal(ExitCodes.ServerError, result.ExitCode);
        Assert.StartsWith($"error: {server.Address} does not speak HTTP/2 on this connection, which gRPC needs", result.Stderr, StringComparison.Ordinal);
        Assert.Contains("h2c", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Models_EmptyZoo_SaysNoModels()
    {
        await using var server = await FakeOipServer.StartAsync(Canned.DigitsInference(), new FakeZooService());

        var result = await CliRun.RunAsync("models", "--endpoint", server.Address);

        Assert.Equal(ExitCodes.Success, result.ExitCode);
        Assert.Contains($"No models at {server.Address}", result.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Models_Unreachable_SaysWhichAddressItTried()
    {
        var address = FakeOipServer.UnusedAddress();

        var result = await CliRun.RunAsync("models", "--endpoint", address);

        Assert.Equal(ExitCodes.ServerError, result.ExitCode);
        Assert.StartsWith($"error: cannot reach http://{address}: ", result.Stderr, StringComparison.Ordinal);
        Assert.Single(result.Stderr.TrimEnd().Split('\n'));
        Assert.DoesNotContain(" at ", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Models_UnreachableWithJson_WritesErrorDocument()
    {
        var address = FakeOipServer.UnusedAddress();

        var result = await CliRun.RunAsync(new Dictionary<string, string> { ["EFFSERVE_ENDPOINT"] = address }, "models", "--json");

        Assert.Equal(ExitCodes.ServerError, result.ExitCode);
        using var json = JsonDocument.Parse(result.Stdout);
        var error = json.RootElement.GetProperty("error");
        Assert.Equal("UNAVAILABLE", error.GetProperty("status").GetString());
        Assert.Equal(ExitCodes.ServerError, error.GetProperty("exitCode").GetInt32());
        Assert.Contains(address, error.GetProperty("message").GetString(), StringComparison.Ordinal);
    }
}
