using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace EffServe.GatewayBench;

/// <summary>
/// A process the benchmark started (service, gateway, nginx): its output is kept (the last lines)
/// for error messages, its CPU time is read from /proc, and it is killed with its children when the
/// benchmark ends, however it ends.
/// </summary>
internal sealed class ChildProcess : IDisposable
{
    private static readonly List<ChildProcess> s_all = [];
    private readonly Process _process;
    private readonly Queue<string> _tail = new();

    private ChildProcess(string name, Process process)
    {
        Name = name;
        _process = process;
    }

    public string Name { get; }

    public int Pid => _process.Id;

    public bool HasExited => _process.HasExited;

    /// <summary>The last lines the process wrote (stdout and stderr together).</summary>
    public string Tail
    {
        get
        {
            lock (_tail)
            {
                return string.Join(Environment.NewLine, _tail);
            }
        }
    }

    public static ChildProcess Start(string name, string fileName, IEnumerable<string> arguments, string workingDirectory, IReadOnlyDictionary<string, string>? environment = null)
    {
        var info = new ProcessStartInfo(fileName)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            info.ArgumentList.Add(argument);
        }

        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[key] = value;
        }

        var process = new Process { StartInfo = info };
        var child = new ChildProcess(name, process);
        process.OutputDataReceived += (_, e) => child.Keep(e.Data);
        process.ErrorDataReceived += (_, e) => child.Keep(e.Data);
        lock (s_all)
        {
            if (!process.Start())
            {
                throw new InvalidOperationException($"Could not start {name} ({fileName}).");
            }

            s_all.Add(child);
        }

        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return child;
    }

    /// <summary>Kills every process started here, with its descendants (nginx's worker, for one).</summary>
    public static void KillAll()
    {
        lock (s_all)
        {
            foreach (var child in s_all)
            {
                child.Kill();
            }
        }
    }

    /// <summary>Processes whose parent is this one (nginx's workers), from /proc.</summary>
    public IReadOnlyList<int> ChildPids()
    {
        var file = $"/proc/{Pid}/task/{Pid}/children";
        if (File.Exists(file))
        {
            return [.. File.ReadAllText(file).Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(p => int.Parse(p, CultureInfo.InvariantCulture))];
        }

        var children = new List<int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var pid) && ProcStat.Fields(pid) is { } fields
                && int.Parse(fields[1], CultureInfo.InvariantCulture) == Pid)
            {
                children.Add(pid);
            }
        }

        return children;
    }

    public void Kill()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                _process.WaitForExit(5000);
            }
        }
        catch (InvalidOperationException)
        {
            // never started or already gone
        }
    }

    public void Dispose()
    {
        Kill();
        _process.Dispose();
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
            while (_tail.Count > 40)
            {
                _tail.Dequeue();
            }
        }
    }
}

/// <summary>CPU time and thread counts of other processes, from /proc.</summary>
internal static class ProcStat
{
    private static readonly Lazy<double> s_ticksPerSecond = new(() =>
    {
        try
        {
            using var getconf = Process.Start(new ProcessStartInfo("getconf", "CLK_TCK") { RedirectStandardOutput = true, UseShellExecute = false });
            var text = getconf!.StandardOutput.ReadToEnd().Trim();
            getconf.WaitForExit();
            return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var hz) && hz > 0 ? hz : 100;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return 100;
        }
    });

    /// <summary>The fields of /proc/PID/stat after the command name: [0] is field 3 (state); null when the process is gone.</summary>
    public static string[]? Fields(int pid)
    {
        try
        {
            var text = File.ReadAllText($"/proc/{pid}/stat");
            return text[(text.LastIndexOf(')') + 2)..].Split(' ');
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>
    /// User plus system CPU seconds of every thread of the process, alive or ended (utime + stime of
    /// /proc/PID/stat: the kernel's precise runtime, reported in clock ticks, so 10 ms per reading).
    /// </summary>
    public static double CpuSeconds(IEnumerable<int> pids)
    {
        long ticks = 0;
        foreach (var pid in pids)
        {
            if (Fields(pid) is { } fields)
            {
                ticks += long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
            }
        }

        return ticks / s_ticksPerSecond.Value;
    }

    /// <summary>Resident memory of a process in MiB (the VmRSS: line of /proc/PID/status); null when it is gone.</summary>
    public static double? RssMiB(int pid)
    {
        try
        {
            var line = File.ReadLines($"/proc/{pid}/status").FirstOrDefault(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
            return line is null ? null : long.Parse(line["VmRSS:".Length..].Replace("kB", "", StringComparison.Ordinal).Trim(), CultureInfo.InvariantCulture) / 1024.0;
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>Threads of the processes together (the Threads: line of /proc/PID/status).</summary>
    public static int Threads(IEnumerable<int> pids)
    {
        var threads = 0;
        foreach (var pid in pids)
        {
            try
            {
                var line = File.ReadLines($"/proc/{pid}/status").FirstOrDefault(l => l.StartsWith("Threads:", StringComparison.Ordinal));
                threads += line is null ? 0 : int.Parse(line["Threads:".Length..].Trim(), CultureInfo.InvariantCulture);
            }
            catch (IOException)
            {
                // gone
            }
        }

        return threads;
    }
}

/// <summary>Free loopback ports.</summary>
internal static class Ports
{
    private static readonly HashSet<int> s_given = [];

    /// <summary>A loopback port nobody listens on now, never the same one twice in this run.</summary>
    public static int Free()
    {
        while (true)
        {
            using var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            var port = ((IPEndPoint)listener.LocalEndpoint).Port;
            listener.Stop();
            if (s_given.Add(port))
            {
                return port;
            }
        }
    }
}
