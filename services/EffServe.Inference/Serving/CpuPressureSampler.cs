using EffServe.Core.Selection;

namespace EffServe.Inference.Serving;

/// <summary>
/// Samples how busy the machine's cores are, ten times a second, for selection
/// (<see cref="CpuPressure"/>; a busy replica breaks accuracy ties towards the cheapest variant): from Linux's <c>/proc/stat</c> (every process on the machine, the
/// callers' included, since they all share the cores), or from this process's CPU time where that
/// file does not exist. The reading is smoothed over a few samples so that one busy slice does not
/// swing the choice of variant.
/// </summary>
public sealed class CpuPressureSampler : IDisposable
{
    private const string ProcStat = "/proc/stat";
    private const double Smoothing = 0.5;

    private static readonly TimeSpan s_every = TimeSpan.FromMilliseconds(100);

    private readonly TimeProvider _time;
    private readonly ITimer _timer;
    private readonly bool _machineWide;
    private long _lastBusy;
    private long _lastTotal;
    private double _utilisation;

    public CpuPressureSampler(TimeProvider time)
    {
        _time = time;
        _machineWide = ReadMachine(out _lastBusy, out _lastTotal);
        if (!_machineWide)
        {
            ReadProcess(out _lastBusy, out _lastTotal);
        }

        _timer = time.CreateTimer(_ => Sample(), null, s_every, s_every);
    }

    /// <summary>Smoothed share of the cores busy, 0–1.</summary>
    public double Utilisation => Volatile.Read(ref _utilisation);

    public void Dispose() => _timer.Dispose();

    private void Sample()
    {
        long busy, total;
        var read = _machineWide ? ReadMachine(out busy, out total) : ReadProcess(out busy, out total);
        if (!read || total <= _lastTotal)
        {
            return;
        }

        var now = Math.Clamp((double)(busy - _lastBusy) / (total - _lastTotal), 0, 1);
        _lastBusy = busy;
        _lastTotal = total;
        Volatile.Write(ref _utilisation, (Smoothing * now) + ((1 - Smoothing) * Utilisation));
    }

    private static bool ReadMachine(out long busy, out long total)
    {
        busy = total = 0;
        try
        {
            using var reader = new StreamReader(ProcStat);
            return reader.ReadLine() is { } line && CpuPressure.TryParseProcStat(line, out busy, out total);
        }
        catch (IOException)
        {
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>This process's CPU time against wall time × cores, both in ticks.</summary>
    private bool ReadProcess(out long busy, out long total)
    {
        busy = Environment.CpuUsage.TotalTime.Ticks;
        total = (long)(_time.GetTimestamp() * (TimeSpan.TicksPerSecond / (double)_time.TimestampFrequency) * Environment.ProcessorCount);
        return true;
    }
}
