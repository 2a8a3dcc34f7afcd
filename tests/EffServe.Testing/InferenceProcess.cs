using System.Diagnostics;
using System.Globalization;
using EffServe.Contracts.Inference;
using EffServe.Inference;
using Grpc.Core;
using Grpc.Net.Client;

namespace EffServe.Testing;

/// <summary>
/// A real inference service in an OS process of its own (<c>dotnet EffServe.Inference.dll</c>, the
/// build copied beside the test binaries), listening on a free loopback port. It is for tests of a
/// crash: <see cref="KillAsync"/> sends SIGKILL to it and its children, so none of the service's
/// shutdown code runs; <see cref="PauseAsync"/> freezes it first when a test must see what it held. Settings go on the command line as <c>--Key=Value</c>, after the test defaults
/// <see cref="InferenceServer"/> also uses (one warm-up run, no calibration) and warnings-only logs.
/// Dispose kills it as well, so a failing test leaves no process behind.
/// </summary>
public sealed class InferenceProcess : IAsyncDisposable
{
    private const int TailLines = 40;
    private readonly Process _process;
    private readonly Queue<string> _tail = new();

    private InferenceProcess(Process process, Uri address)
    {
        _process = process;
        Address = address;
        Channel = GrpcChannel.ForAddress(address);
    }

    public Uri Address { get; }

    /// <summary>A channel to the service, shared by the test's clients.</summary>
    public GrpcChannel Channel { get; }

    public int Pid => _process.Id;

    public bool HasExited => _process.HasExited;

    /// <summary>The exit status once the process has exited (128 + the signal's number when a signal ended it).</summary>
    public int ExitCode => _process.ExitCode;

    /// <summary>The last lines the service wrote (stdout and stderr together), for failure messages.</summary>
    public string Output
    {
        get
        {
            lock (_tail)
            {
                return string.Join(Environment.NewLine, _tail);
            }
        }
    }

    /// <summary>
    /// Starts the service over <paramref name="zooPath"/> and waits until it answers ServerReady with
    /// true; fails, with the service's last output, when it exits first or is not ready within
    /// <paramref name="readyWithin"/> (60 s when not given).
    /// </summary>
    public static async Task<InferenceProcess> StartAsync(string zooPath, IDictionary<string, string?>? settings = null, TimeSpan? readyWithin = null, CancellationToken cancellationToken = default)
    {
        var dll = typeof(InferenceServiceExtensions).Assembly.Location;
        var folder = Path.GetDirectoryName(dll);
        if (string.IsNullOrEmpty(folder) || !File.Exists(dll) || !File.Exists(Path.ChangeExtension(dll, ".runtimeconfig.json")))
        {
            throw new InvalidOperationException(
                $"No runnable EffServe.Inference.dll (with its runtimeconfig.json) at '{dll}'; build the test project, which copies the service beside it.");
        }

        var address = new Uri($"http://127.0.0.1:{LoopbackPorts.Unused().ToString(CultureInfo.InvariantCulture)}");
        var config = new Dictionary<string, string?>
        {
            ["EffServe:Inference:ZooPath"] = zooPath,
            ["EffServe:Onnx:WarmupRuns"] = "1",
            ["EffServe:Selection:Calibrate"] = "false",
            ["Logging:LogLevel:Default"] = "Warning",
        };
        foreach (var (key, value) in settings ?? new Dictionary<string, string?>())
        {
            config[key] = value;
        }

        // The dotnet that runs the tests when the SDK says which (DOTNET_HOST_PATH), else the one on PATH.
        var host = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        var info = new ProcessStartInfo(string.IsNullOrEmpty(host) ? "dotnet" : host)
        {
            WorkingDirectory = folder,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[] { dll, "--contentRoot", folder, "--environment", "Testing", "--urls", address.ToString().TrimEnd('/') })
        {
            info.ArgumentList.Add(arg);
        }

        foreach (var (key, value) in config.Where(c => c.Value is not null))
        {
            info.ArgumentList.Add($"--{key}={value}");
        }

        var process = new Process { StartInfo = info };
        var service = new InferenceProcess(process, address);
        process.OutputDataReceived += (_, e) => service.Keep(e.Data);
        process.ErrorDataReceived += (_, e) => service.Keep(e.Data);
        try
        {
            if (!process.Start())
            {
                throw new InvalidOperationException($"Could not start {info.FileName} {dll}.");
            }

            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            await service.WaitUntilReadyAsync(readyWithin ?? TimeSpan.FromSeconds(60), cancellationToken).ConfigureAwait(false);
            return service;
        }
        catch
        {
            await service.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Kills the service and its children at once (SIGKILL), as a crash would, and waits until it has exited; returns its exit status.</summary>
    public async Task<int> KillAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
        }

        await _process.WaitForExitAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30)).ConfigureAwait(false);
        return _process.ExitCode;
    }

    /// <summary>
    /// Freezes the service (SIGSTOP) and waits until the kernel reports it stopped, so that a test can
    /// look at what it holds and kill it in that state; <see cref="ResumeAsync"/> lets it go on.
    /// </summary>
    public async Task PauseAsync(CancellationToken cancellationToken = default)
    {
        await SignalAsync("STOP", cancellationToken).ConfigureAwait(false);
        var stat = $"/proc/{Pid.ToString(CultureInfo.InvariantCulture)}/stat";
        using var giveUp = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        giveUp.CancelAfter(TimeSpan.FromSeconds(10));
        while (File.Exists(stat) && State(await File.ReadAllTextAsync(stat, giveUp.Token).ConfigureAwait(false)) is not ('T' or 't'))
        {
            await Task.Delay(10, giveUp.Token).ConfigureAwait(false);
        }
    }

    /// <summary>Lets a paused service run again (SIGCONT).</summary>
    public Task ResumeAsync(CancellationToken cancellationToken = default) => SignalAsync("CONT", cancellationToken);

    public async ValueTask DisposeAsync()
    {
        Channel.Dispose();
        try
        {
            await KillAsync().ConfigureAwait(false);
        }
        catch (InvalidOperationException)
        {
            // never started
        }

        _process.Dispose();
    }

    private async Task WaitUntilReadyAsync(TimeSpan within, CancellationToken cancellationToken)
    {
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(Channel);
        var started = TimeProvider.System.GetTimestamp();
        while (true)
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"The inference service exited with status {_process.ExitCode} before it was ready:{Environment.NewLine}{Output}");
            }

            try
            {
                var ready = await client.ServerReadyAsync(
                    new ServerReadyRequest(),
                    deadline: TimeProvider.System.GetUtcNow().UtcDateTime.AddSeconds(2),
                    cancellationToken: cancellationToken).ResponseAsync.ConfigureAwait(false);
                if (ready.Ready)
                {
                    return;
                }
            }
            catch (RpcException e) when (e.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded)
            {
                // not listening yet
            }

            if (TimeProvider.System.GetElapsedTime(started) > within)
            {
                throw new TimeoutException($"The inference service at {Address} was not ready within {within.TotalSeconds} s:{Environment.NewLine}{Output}");
            }

            await Task.Delay(100, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>The state letter of /proc/PID/stat: the field after the command name in parentheses.</summary>
    private static char State(string stat) => stat[stat.LastIndexOf(')') + 2];

    private async Task SignalAsync(string signal, CancellationToken cancellationToken)
    {
        var info = new ProcessStartInfo("kill") { UseShellExecute = false };
        info.ArgumentList.Add("-" + signal);
        info.ArgumentList.Add(Pid.ToString(CultureInfo.InvariantCulture));
        using var kill = Process.Start(info) ?? throw new InvalidOperationException($"kill -{signal} did not start.");
        await kill.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
        if (kill.ExitCode != 0)
        {
            throw new InvalidOperationException($"kill -{signal} {Pid} failed with status {kill.ExitCode}.");
        }
    }

    private void Keep(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_tail)
        {
            _tail.Enqueue(line);
            while (_tail.Count > TailLines)
            {
                _tail.Dequeue();
            }
        }
    }
}
