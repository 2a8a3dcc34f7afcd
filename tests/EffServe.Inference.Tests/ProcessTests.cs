using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using EffServe.Contracts.Inference;
using EffServe.Testing;
using Grpc.Net.Client;

namespace EffServe.Inference.Tests;

/// <summary>The service as a process, started the way `make run` starts it.</summary>
public sealed class ProcessTests
{
    private static readonly string s_dll = typeof(InferenceServiceExtensions).Assembly.Location;

    [Fact]
    public async Task Process_BadZoo_ExitsWithStatusTwoAndListsEveryProblem()
    {
        var zoo = Directory.CreateTempSubdirectory("effserve-badzoo-").FullName;
        try
        {
            var model = Directory.CreateDirectory(Path.Combine(zoo, "broken")).FullName;
            await File.WriteAllTextAsync(Path.Combine(model, "model.yaml"), """
                task: image-classification
                inputs:
                  - { name: x, datatype: FLOAT, shape: [-1, 4] }
                outputs:
                  - { name: y, datatype: FP32, shape: [-1, 4] }
                variants:
                  - { name: a, kind: fp8, file: missing.onnx }
                """, TestContext.Current.CancellationToken);

            using var process = Start(zoo, FreePort());
            var output = process.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
            await process.WaitForExitAsync(TestContext.Current.CancellationToken).WaitAsync(TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken);
            var text = await output;

            Assert.Equal(2, process.ExitCode);
            Assert.Contains("has 3 problems", text, StringComparison.Ordinal);
            Assert.Contains("inputs[0].datatype: 'FLOAT' is not a datatype", text, StringComparison.Ordinal);
            Assert.Contains("'fp8' is not a variant kind", text, StringComparison.Ordinal);
            Assert.DoesNotContain("   at ", text, StringComparison.Ordinal); // no stack trace
        }
        finally
        {
            Directory.Delete(zoo, recursive: true);
        }
    }

    [Fact]
    public async Task Process_DemoZoo_ServesAndStopsOnSigterm()
    {
        var port = FreePort();
        using var process = Start(RepoPaths.Zoo, port);
        var output = process.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        try
        {
            using var channel = GrpcChannel.ForAddress($"http://127.0.0.1:{port}");
            var client = new GRPCInferenceService.GRPCInferenceServiceClient(channel);
            var ready = false;
            for (var attempt = 0; attempt < 120 && !ready && !process.HasExited; attempt++)
            {
                try
                {
                    ready = (await client.ServerReadyAsync(new ServerReadyRequest(), cancellationToken: TestContext.Current.CancellationToken)).Ready;
                }
                catch (Grpc.Core.RpcException)
                {
                    await Task.Delay(250, TestContext.Current.CancellationToken);
                }
            }

            Assert.True(ready, "the service never became ready: " + (process.HasExited ? await output : "(still running)"));
            var metadata = await client.ModelMetadataAsync(new ModelMetadataRequest { Name = "digits" }, cancellationToken: TestContext.Current.CancellationToken);
            Assert.Equal("digits", metadata.Name);
        }
        finally
        {
            if (!process.HasExited)
            {
                Process.Start("kill", ["-TERM", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])!.WaitForExit();
            }
        }

        await process.WaitForExitAsync(TestContext.Current.CancellationToken).WaitAsync(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken);
        Assert.Equal(0, process.ExitCode);
        Assert.Contains("Application is shutting down", await output, StringComparison.Ordinal);
    }

    private static Process Start(string zoo, int port)
    {
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = false,
            UseShellExecute = false,
            WorkingDirectory = Path.GetDirectoryName(s_dll)!,
        };
        foreach (var arg in new[] { s_dll, "--urls", $"http://127.0.0.1:{port}", $"--EffServe:Inference:ZooPath={zoo}", "--Logging:Console:FormatterName=simple" })
        {
            info.ArgumentList.Add(arg);
        }

        return Process.Start(info)!;
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
