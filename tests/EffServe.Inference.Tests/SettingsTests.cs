using System.Diagnostics;
using EffServe.Testing;

namespace EffServe.Inference.Tests;

/// <summary>Bad settings stop the service before the zoo loads, every problem named by its path at once.</summary>
public sealed class SettingsTests
{
    [Fact]
    public async Task CheckSettings_ProblemsInSeveralSections_EveryOneReported()
    {
        var settings = new Dictionary<string, string?>
        {
            ["EffServe:Onnx:IntraOpThreads"] = "-1",
            ["EffServe:Selection:Policy"] = "cheapest",
            ["EffServe:Selection:Models:digits:MaxBatchSize"] = "0",
            ["EffServe:Inference:MaxConcurrentRuns"] = "-2",
            ["EffServe:Jobs:MaxInFlight"] = "many",
        };

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => InferenceServer.StartAsync(RepoPaths.Zoo, settings));

        AssertMentions(
            error.Message,
            "EffServe:Onnx:IntraOpThreads is -1",
            "EffServe:Selection:Policy is 'cheapest'",
            "EffServe:Selection:Models:digits:MaxBatchSize is 0",
            "EffServe:Inference:MaxConcurrentRuns is -2",
            "EffServe:Jobs:MaxInFlight is 'many'; it must be a whole number");
        Assert.Contains("5 problems", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task CheckSettings_ValueThatDoesNotConvert_NamedWithTheOtherProblemsOfItsSection()
    {
        var settings = new Dictionary<string, string?>
        {
            ["EffServe:Inference:MaxMessageBytes"] = "lots",
            ["EffServe:Inference:ServerName"] = " ",
            ["EffServe:Selection:Calibrate"] = "perhaps",
        };

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => InferenceServer.StartAsync(RepoPaths.Zoo, settings));

        AssertMentions(
            error.Message,
            "EffServe:Inference:MaxMessageBytes is 'lots'; it must be a whole number",
            "EffServe:Inference:ServerName is empty",
            "EffServe:Selection:Calibrate is 'perhaps'; it must be true or false");
    }

    [Fact]
    public async Task Process_NonNumericSetting_ExitsWithStatusTwoInOneLineWithoutStackTrace()
    {
        var host = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        var info = new ProcessStartInfo(string.IsNullOrEmpty(host) ? "dotnet" : host)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetDirectoryName(typeof(InferenceServiceExtensions).Assembly.Location)!,
        };
        foreach (var arg in new[]
        {
            typeof(InferenceServiceExtensions).Assembly.Location, "--urls", "http://127.0.0.1:0",
            $"--EffServe:Inference:ZooPath={RepoPaths.Zoo}", "--Logging:Console:FormatterName=simple",
            "--EffServe:Inference:MaxMessageBytes=lots", "--EffServe:Onnx:WarmupRuns=-1", "--EffServe:Telemetry:TraceSampleRatio=half",
        })
        {
            info.ArgumentList.Add(arg);
        }

        using var process = Process.Start(info)!;
        var output = process.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        var errors = process.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        await process.WaitForExitAsync(TestContext.Current.CancellationToken).WaitAsync(TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken);
        var text = await output + await errors;

        Assert.Equal(2, process.ExitCode);
        AssertMentions(
            text,
            "3 problems",
            "EffServe:Inference:MaxMessageBytes is 'lots'",
            "EffServe:Onnx:WarmupRuns is -1",
            "EffServe:Telemetry:TraceSampleRatio is 'half'");
        Assert.DoesNotContain("   at ", text, StringComparison.Ordinal);
        Assert.DoesNotContain("Loading the zoo", text, StringComparison.Ordinal); // checked before the zoo loads
    }

    private static void AssertMentions(string text, params string[] fragments)
    {
        foreach (var fragment in fragments)
        {
            Assert.True(text.Contains(fragment, StringComparison.Ordinal), $"Expected '{fragment}' in: {text}");
        }
    }
}
