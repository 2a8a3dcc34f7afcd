using EffServe.Contracts.Inference;
using Grpc.Core;
using Grpc.Net.Client;

namespace EffServe.GatewayBench;

/// <summary>Waiting for a started server to answer ServerReady (shared by the benchmarks that start services).</summary>
internal static class Readiness
{
    /// <summary>Waits until ServerReady answers true at <paramref name="address"/>; fails with the process's output if it ends or <paramref name="timeoutSeconds"/> pass.</summary>
    public static async Task WaitReadyAsync(ChildProcess process, Uri address, string? errorLog, int timeoutSeconds = 60)
    {
        using var channel = GrpcChannel.ForAddress(address);
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(channel);
        var started = TimeProvider.System.GetTimestamp();
        var last = "no answer yet";
        while (TimeProvider.System.GetElapsedTime(started) < TimeSpan.FromSeconds(timeoutSeconds))
        {
            if (process.HasExited)
            {
                throw new BenchException($"{process.Name} ended before it was ready:{Environment.NewLine}{process.Tail}{ErrorLog(errorLog)}");
            }

            try
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
                var reply = await client.ServerReadyAsync(new ServerReadyRequest(), cancellationToken: timeout.Token).ConfigureAwait(false);
                if (reply.Ready)
                {
                    return;
                }

                last = "ServerReady answered false";
            }
            catch (RpcException e)
            {
                last = $"{e.StatusCode}: {e.Status.Detail}";
            }

            await Task.Delay(200).ConfigureAwait(false);
        }

        throw new BenchException($"{process.Name} at {address} was not ready after {timeoutSeconds} s ({last}):{Environment.NewLine}{process.Tail}{ErrorLog(errorLog)}");
    }

    private static string ErrorLog(string? path) =>
        path is not null && File.Exists(path) ? $"{Environment.NewLine}{path}:{Environment.NewLine}{Prerequisites.Last(File.ReadAllText(path), 20)}" : "";
}
