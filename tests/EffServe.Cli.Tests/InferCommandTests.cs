using System.Text.Json;
using EffServe.Cli.Tests.Infrastructure;
using EffServe.Contracts.Inference;
using EffServe.Core.Tensors;

namespace EffServe.Cli.Tests;

public sealed class InferCommandTests
{
    [Fact]
    public async Task Infer_Sample_SendsRawImageAndPrintsRankingAndServerFacts()
    {
        var inference = Canned.DigitsInference();
        inference.ResponseParameters["effserve.variant"] = new InferParameter { StringParam = "early-exit" };
        inference.ResponseParameters["effserve.exit_stage"] = new InferParameter { Int64Param = 2 };
        inference.ResponseParameters["effserve.queue_us"] = new InferParameter { Int64Param = 31 };
        inference.ResponseParameters["effserve.compute_us"] = new InferParameter { Int64Param = 140 };
        inference.ResponseParameters["effserve.batch_size"] = new InferParameter { Int64Param = 1 };
        inference.ResponseParameters["effserve.cache"] = new InferParameter { StringParam = "miss" };
        await using var server = await FakeOipServer.StartAsync(inference);
        var sample = EvalSetSample(5);

        var result = await CliRun.RunAsync("infer", "-m", "digits", "--sample", "5", "--zoo", RepoPaths.Zoo, "--endpoint", server.Address);

        TestContext.Current.TestOutputHelper?.WriteLine(result.Stdout);
        Assert.Equal(ExitCodes.Success, result.ExitCode);
        Assert.Equal("", result.Stderr);
        var request = Assert.Single(inference.Requests);
        Assert.Equal("digits", request.ModelName);
        var input = Assert.Single(request.Inputs);
        Assert.Equal("image", input.Name);
        Assert.Equal("FP32", input.Datatype);
        Assert.Equal([1L, 1, 8, 8], input.Shape);
        Assert.Equal(sample.Image, Assert.Single(request.RawInputContents).ToByteArray());
        Assert.Empty(request.Parameters);

        Assert.Contains($"digits (version 1) at {server.Address}", result.Stdout, StringComparison.Ordinal);
        Assert.Contains($"Sample 5 · true label {sample.Label}", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("63.21%", result.Stdout, StringComparison.Ordinal); // softmax of 0..9, class 9
        Assert.Contains("23.26%", result.Stdout, StringComparison.Ordinal); // class 8
        Assert.Contains("8.56%", result.Stdout, StringComparison.Ordinal);  // class 7
        Assert.DoesNotContain("3.15%", result.Stdout, StringComparison.Ordinal); // class 6: beyond top-3
        Assert.Matches(@"variant\s+early-exit", result.Stdout);
        Assert.Matches(@"exit stage\s+2", result.Stdout);
        Assert.Matches(@"queue\s+31 µs", result.Stdout);
        Assert.Matches(@"compute\s+140 µs", result.Stdout);
        Assert.Matches(@"batch size\s+1", result.Stdout);
        Assert.Matches(@"effserve\.cache\s+miss", result.Stdout);
        Assert.Matches(@"round trip\s+[0-9.]+ ms \(client\)", result.Stdout);
    }

    [Fact]
    public async Task Infer_VariantAndThreshold_TravelAsRequestParameters()
    {
        var inference = Canned.DigitsInference();
        await using var server = await FakeOipServer.StartAsync(inference);

        var result = await CliRun.RunAsync("infer", "-m", "digits", "-s", "0", "--zoo", RepoPaths.Zoo, "--variant", "early-exit", "--threshold", "0.75", "--version", "1", "-e", server.Address);

        Assert.Equal(ExitCodes.Success, result.ExitCode);
        var request = Assert.Single(inference.Requests);
        Assert.Equal("1", request.ModelVersion);
        Assert.Equal("early-exit", request.Parameters["effserve.variant"].StringParam);
        Assert.Equal(0.75, request.Parameters["effserve.exit_threshold"].DoubleParam);
    }

    [Fact]
    public async Task Infer_Typed_SendsFp32ContentsAndReadsTypedAnswer()
    {
        var inference = Canned.DigitsInference();
        inference.RespondTyped = true;
        inference.Logits = [0f, 0f, 0f, 5f, 0f, 0f, 0f, 0f, 0f, 0f];
        await using var server = await FakeOipServer.StartAsync(inference);
        var sample = EvalSetSample(3);

        var result = await CliRun.RunAsync("infer", "-m", "digits", "-s", "3", "--zoo", RepoPaths.Zoo, "--typed", "--json", "-k", "1", "-e", server.Address);

        Assert.Equal(ExitCodes.Success, result.ExitCode);
        var request = Assert.Single(inference.Requests);
        Assert.Empty(request.RawInputContents);
        var floats = request.Inputs[0].Contents.Fp32Contents;
        Assert.Equal(64, floats.Count);
        Assert.Equal(BitConverter.ToSingle(sample.Image, 4 * 10), floats[10]);

        using var json = JsonDocument.Parse(result.Stdout);
        Assert.Equal("typed", json.RootElement.GetProperty("encoding").GetString());
        var only = Assert.Single(json.RootElement.GetProperty("samples").EnumerateArray());
        Assert.Equal(3, only.GetProperty("sample").GetInt32());
        Assert.Equal(sample.Label, only.GetProperty("trueClass").GetInt64());
        var top = Assert.Single(only.GetProperty("top").EnumerateArray());
        Assert.Equal(3, top.GetProperty("index").GetInt32());
    }

    [Fact]
    public async Task Infer_ZooListingHasLabels_UsesThem()
    {
        var zoo = new FakeZooService();
        zoo.Models.Add(Canned.DigitsZooModel(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]));
        await using var server = await FakeOipServer.StartAsync(Canned.DigitsInference(), zoo);

        var result = await CliRun.RunAsync("infer", "-m", "digits", "-s", "0", "--zoo", RepoPaths.Zoo, "--json", "-e", server.Address);

        Assert.Equal(ExitCodes.Success, result.ExitCode);
        using var json = JsonDocument.Parse(result.Stdout);
        var top = json.RootElement.GetProperty("samples")[0].GetProperty("top").EnumerateArray().Select(t => t.GetProperty("label").GetString());
        Assert.Equal(["nine", "eight", "seven"], top);
    }

    [Fact]
    public async Task Infer_InputWithoutBatchDimension_AddsIt()
    {
        var inference = Canned.DigitsInference();
        await using var server = await FakeOipServer.StartAsync(inference);
        using var folder = new TempFolder();
        var file = WriteFloats(folder.File("one.npy"), [1, 8, 8]);

        var result = await CliRun.RunAsync("infer", "-m", "digits", "--input", file, "--json", "-e", server.Address);

        Assert.Equal(ExitCodes.Success, result.ExitCode);
        Assert.Equal([1L, 1, 8, 8], Assert.Single(inference.Requests).Inputs[0].Shape);
        using var json = JsonDocument.Parse(result.Stdout);
        var only = Assert.Single(json.RootElement.GetProperty("samples").EnumerateArray());
        Assert.False(only.TryGetProperty("trueClass", out _));
    }

    [Fact]
    public async Task Infer_BatchOfThree_RanksEachSample()
    {
        var inference = Canned.DigitsInference();
        await using var server = await FakeOipServer.StartAsync(inference);
        using var folder = new TempFolder();
        var file = WriteFloats(folder.File("batch.npy"), [3, 1, 8, 8]);

        var result = await CliRun.RunAsync("infer", "-m", "digits", "-i", file, "-k", "2", "-e", server.Address);

        Assert.Equal(ExitCodes.Success, result.ExitCode);
        Assert.Equal([3L, 1, 8, 8], Assert.Single(inference.Requests).Inputs[0].Shape);
        Assert.Contains("3 samples", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("Sample 0", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("Sample 1", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("Sample 2", result.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Infer_BatchWithPerSampleExitStages_ShowsEachStage()
    {
        var inference = Canned.DigitsInference();
        inference.ResponseParameters["effserve.exit_stage"] = new InferParameter { Int64Param = 3 };
        inference.ResponseParameters["effserve.exit_stages"] = new InferParameter { StringParam = "1,3" };
        await using var server = await FakeOipServer.StartAsync(inference);
        using var folder = new TempFolder();
        var file = WriteFloats(folder.File("pair.npy"), [2, 1, 8, 8]);

        var human = await CliRun.RunAsync("infer", "-m", "digits", "-i", file, "-e", server.Address);
        var json = await CliRun.RunAsync("infer", "-m", "digits", "-i", file, "--json", "-e", server.Address);

        Assert.Equal(ExitCodes.Success, human.ExitCode);
        Assert.Contains("Sample 0 · exit stage 1", human.Stdout, StringComparison.Ordinal);
        Assert.Contains("Sample 1 · exit stage 3", human.Stdout, StringComparison.Ordinal);
        using var document = JsonDocument.Parse(json.Stdout);
        Assert.Equal([1L, 3L], document.RootElement.GetProperty("samples").EnumerateArray().Select(s => s.GetProperty("exitStage").GetInt64()));
        Assert.Equal(3, document.RootElement.GetProperty("exitStage").GetInt64());
    }

    [Fact]
    public async Task Infer_InputWrongShape_FailsBeforeSending()
    {
        var inference = Canned.DigitsInference();
        await using var server = await FakeOipServer.StartAsync(inference);
        using var folder = new TempFolder();
        var file = WriteFloats(folder.File("bad.npy"), [4, 4]);

        var result = await CliRun.RunAsync("infer", "-m", "digits", "-i", file, "-e", server.Address);

        Assert.Equal(ExitCodes.InvalidInput, result.ExitCode);
        Assert.Empty(inference.Requests);
        Assert.Contains("has shape [4, 4] but input 'image' takes [-1, 1, 8, 8]", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Infer_InputMissing_SaysSo()
    {
        await using var server = await FakeOipServer.StartAsync(Canned.DigitsInference());

        var result = await CliRun.RunAsync("infer", "-m", "digits", "-i", "/no/such/file.npy", "-e", server.Address);

        Assert.Equal(ExitCodes.InvalidInput, result.ExitCode);
        Assert.Equal("error: /no/such/file.npy does not exist.", result.Stderr.TrimEnd());
    }

    [Fact]
    public async Task Infer_SampleOutOfRange_IsAUsageError()
    {
        var inference = Canned.DigitsInference();
        await using var server = await FakeOipServer.StartAsync(inference);

        var result = await CliRun.RunAsync("infer", "-m", "digits", "-s", "540", "--zoo", RepoPaths.Zoo, "-e", server.Address);

        Assert.Equal(ExitCodes.Usage, result.ExitCode);
        Assert.Empty(inference.Requests);
        Assert.Equal("error: --sample 540 is out of range: the evaluation set of 'digits' has 540 samples (0 to 539).", result.Stderr.TrimEnd());
    }

    [Fact]
    public async Task Infer_DefaultZoo_IsZooUnderTheWorkingDirectory()
    {
        await using var server = await FakeOipServer.StartAsync(Canned.DigitsInference());

        var result = await CliRun.RunAsync("infer", "-m", "digits", "-s", "1", "-e", server.Address);

        Assert.Equal(ExitCodes.Success, result.ExitCode);
    }

    [Fact]
    public async Task Infer_UnknownModel_ReportsNotFoundInOneLine()
    {
        await using var server = await FakeOipServer.StartAsync(Canned.DigitsInference());

        var result = await CliRun.RunAsync("infer", "-m", "nope", "-s", "0", "-e", server.Address);

        Assert.Equal(ExitCodes.NotFound, result.ExitCode);
        Assert.Equal($"error: NOT_FOUND from {server.Address}: model 'nope' is not served here", result.Stderr.TrimEnd());
        Assert.Equal("", result.Stdout);
    }

    [Fact]
    public async Task Infer_UnknownModelWithJson_WritesErrorDocument()
    {
        await using var server = await FakeOipServer.StartAsync(Canned.DigitsInference());

        var result = await CliRun.RunAsync("infer", "-m", "nope", "-s", "0", "--json", "-e", server.Address);

        Assert.Equal(ExitCodes.NotFound, result.ExitCode);
        using var json = JsonDocument.Parse(result.Stdout);
        Assert.Equal("NOT_FOUND", json.RootElement.GetProperty("error").GetProperty("status").GetString());
    }

    [Theory]
    [InlineData("--model", "digits")]
    [InlineData("--model", "digits", "--sample", "1", "--input", "x.npy")]
    [InlineData("--model", "digits", "--sample", "1", "--raw", "--typed")]
    [InlineData("--model", "digits", "--sample", "1", "--top-k", "0")]
    [InlineData("--model", "digits", "--sample", "1", "--threshold", "1.5")]
    [InlineData("--model", "digits", "--sample", "-1")]
    [InlineData("--sample", "1")]
    public async Task Infer_BadCommandLine_IsAUsageError(params string[] args)
    {
        var result = await CliRun.RunAsync(["infer", .. args, "--endpoint", FakeOipServer.UnusedAddress()]);

        Assert.Equal(ExitCodes.Usage, result.ExitCode);
        Assert.NotEqual("", result.Stderr);
    }

    [Fact]
    public async Task Infer_InvalidEndpoint_IsAUsageError()
    {
        var result = await CliRun.RunAsync("infer", "-m", "digits", "-s", "0", "--endpoint", "grpc://localhost:8001");

        Assert.Equal(ExitCodes.Usage, result.ExitCode);
        Assert.Contains("uses scheme 'grpc'", result.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Help_ListsBothCommands()
    {
        var result = await CliRun.RunAsync("--help");

        Assert.Equal(ExitCodes.Success, result.ExitCode);
        Assert.Contains("models", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("infer", result.Stdout, StringComparison.Ordinal);
        Assert.Contains("--endpoint", result.Stdout, StringComparison.Ordinal);
    }

    private static (byte[] Image, long Label) EvalSetSample(int index)
    {
        var images = NpyArray.Read(Path.Combine(RepoPaths.Zoo, "digits", "eval", "images.npy"));
        var labels = NpyArray.Read(Path.Combine(RepoPaths.Zoo, "digits", "eval", "labels.npy"));
        return (images.Data.AsSpan(index * 256, 256).ToArray(), BitConverter.ToInt64(labels.Data, index * 8));
    }

    private static string WriteFloats(string path, long[] shape)
    {
        var array = new NpyArray(DataType.Fp32, shape, new byte[Shapes.ElementCount(shape) * sizeof(float)]);
        using var stream = File.Create(path);
        array.Write(stream);
        return path;
    }
}
