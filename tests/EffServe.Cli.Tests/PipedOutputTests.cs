using EffServe.Cli.Tests.Infrastructure;
using EffServe.Contracts.Zoo;

namespace EffServe.Cli.Tests;

/// <summary>With stdout piped or redirected, human output is never wrapped and draws no progress bars.</summary>
public sealed class PipedOutputTests
{
    private const string LongReason = "the CUDA execution provider is not part of this build; install the GPU package and a driver for compute capability 7.0 or newer";

    [Fact]
    public async Task Models_Piped_EachRowOnOneLine()
    {
        var zoo = new FakeZooService();
        var model = Canned.DigitsZooModel();
        model.Variants.Add(new ZooVariant { Name = "fp16-gpu-with-a-long-name", Kind = "fp16", Provider = "cuda", State = "SKIPPED", Reason = LongReason, Stages = 1 });
        zoo.Models.Add(model);
        await using var server = await FakeOipServer.StartAsync(Canned.DigitsInference(), zoo);

        var result = await CliRun.RunPipedAsync("models", "--endpoint", server.Address);

        Assert.Equal(ExitCodes.Success, result.ExitCode);
        var lines = result.Stdout.Split('\n');
        Assert.Single(lines, l => l.Contains("│ fp16-gpu-with-a-long-name", StringComparison.Ordinal) && l.Contains("SKIPPED", StringComparison.Ordinal));
        Assert.Single(lines, l => l.Contains(LongReason, StringComparison.Ordinal)); // the whole reason, unbroken
        Assert.Single(lines, l => l.Contains("│ digits", StringComparison.Ordinal) && l.Contains("logits FP32 [-1, 10]", StringComparison.Ordinal));
        Assert.True(lines.Length < 25, $"{lines.Length} lines for one model:\n{result.Stdout}");
        Assert.DoesNotContain("\u001b[", result.Stdout, StringComparison.Ordinal); // no ANSI codes into a pipe
    }

    [Fact]
    public async Task ZooImport_Piped_DrawsNoProgress()
    {
        using var zoo = new TempFolder();

        var result = await CliRun.RunPipedAsync("zoo", "import", "zoo/digits/fp32/digits.onnx", "--zoo", zoo.Path, "--outputs", "logits");

        Assert.Equal(ExitCodes.Success, result.ExitCode);
        Assert.DoesNotMatch(@"(?m)^\s*\d+%\s*$", result.Stdout);
        Assert.DoesNotContain("━", result.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("0%", result.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void PipedConsole_IsWideAndNotInteractive()
    {
        var console = CliContext.CreatePipedConsole(new StringWriter());

        Assert.False(console.Profile.Capabilities.Interactive);
        Assert.Equal(CliContext.PipedWidth, console.Profile.Width);
    }
}
