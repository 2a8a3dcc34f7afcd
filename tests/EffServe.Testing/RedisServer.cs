using System.Diagnostics;
using System.Net.Sockets;

namespace EffServe.Testing;

/// <summary>
/// A real redis-server for a test: started on a free loopback port with persistence off
/// (<c>--save "" --appendonly no</c>), stopped by its pid. It can be killed (SIGKILL) and started
/// again on the same port, to test what happens while Redis is gone.
/// </summary>
public sealed class RedisServer : IAsyncDisposable
{
    private Process? _process;

    private RedisServer(int port)
    {
        Port = port;
    }

    public int Port { get; }

    /// <summary>The StackExchange.Redis connection string (ConnectionStrings:redis).</summary>
    public string ConnectionString => $"127.0.0.1:{Port}";

    public bool IsRunning => _process is { HasExited: false };

    /// <summary>The server's process id while it runs (benchmarks read its CPU time from /proc), else null.</summary>
    public int? Pid => IsRunning ? _process!.Id : null;

    /// <summary>Starts redis-server on a free port; fails with a clear message when it is not installed (tests/prerequisites.sh installs it).</summary>
    public static async Task<RedisServer> StartAsync()
    {
        var server = new RedisServer(LoopbackPorts.Unused());
        await server.RestartAsync().ConfigureAwait(false);
        return server;
    }

    /// <summary>Starts the server again on its port (after <see cref="KillAsync"/>), empty.</summary>
    public async Task RestartAsync()
    {
        if (IsRunning)
        {
            return;
        }

        await LoopbackPorts.WaitUntilFreeAsync(Port, TimeSpan.FromSeconds(10)).ConfigureAwait(false);
        var start = new ProcessStartInfo("redis-server")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[] { "--port", Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--protected-mode", "no" })
        {
            start.ArgumentList.Add(arg);
        }

        try
        {
            _process = Process.Start(start) ?? throw new InvalidOperationException("redis-server did not start.");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException("redis-server is not installed; run tests/prerequisites.sh (it installs Debian's redis-server).", e);
        }

        _process.OutputDataReceived += static (_, _) => { };
        _process.ErrorDataReceived += static (_, _) => { };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        using var giveUp = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        while (true)
        {
            try
            {
                using var client = new TcpClient();
                await client.ConnectAsync("127.0.0.1", Port, giveUp.Token).ConfigureAwait(false);
                return;
            }
            catch (SocketException) when (!giveUp.IsCancellationRequested && !_process.HasExited)
            {
                await Task.Delay(20, CancellationToken.None).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Kills the server at once (SIGKILL), as a crash would.</summary>
    public async Task KillAsync()
    {
        if (_process is null)
        {
            return;
        }

        if (!_process.HasExited)
        {
            _process.Kill();
        }

        await _process.WaitForExitAsync().ConfigureAwait(false);
        _process.Dispose();
        _process = null;
    }

    public async ValueTask DisposeAsync() => await KillAsync().ConfigureAwait(false);
}
