using System.Runtime.InteropServices;

namespace EffServe.Core.Accounting;

/// <summary>Whose CPU time a reading covers.</summary>
public enum CpuClockScope
{
    /// <summary>The calling thread only: exact for a run that executes on that one thread.</summary>
    Thread,

    /// <summary>Every thread of the process: covers multi-threaded runs, but also whatever else the process did meanwhile.</summary>
    Process,
}

/// <summary>
/// CPU time in nanoseconds. On Linux the thread clock is <c>clock_gettime(CLOCK_THREAD_CPUTIME_ID)</c>,
/// which the kernel keeps to the nanosecond; elsewhere only the process clock is offered.
/// </summary>
public static class CpuClock
{
    private const int ClockThreadCpuTimeId = 3;

    private static readonly bool s_threadClock = ProbeThreadClock();

    /// <summary>Whether <see cref="CpuClockScope.Thread"/> readings are available on this machine.</summary>
    public static bool HasThreadClock => s_threadClock;

    /// <summary>The scope to use when a thread reading is wanted: the thread clock where it exists, else the process clock.</summary>
    public static CpuClockScope Best(CpuClockScope wanted) =>
        wanted == CpuClockScope.Thread && s_threadClock ? CpuClockScope.Thread : CpuClockScope.Process;

    /// <summary>CPU time consumed so far by the calling thread or by the whole process, in nanoseconds.</summary>
    public static long Nanoseconds(CpuClockScope scope) =>
        scope == CpuClockScope.Thread && s_threadClock ? ThreadNanoseconds() : ProcessNanoseconds();

    /// <summary>CPU time of every thread of the process (user + system), in nanoseconds (getrusage: microsecond resolution).</summary>
    public static long ProcessNanoseconds() => Environment.CpuUsage.TotalTime.Ticks * 100;

    private static long ThreadNanoseconds()
    {
        _ = Native.ClockGetTime(ClockThreadCpuTimeId, out var now);
        return (now.Seconds * 1_000_000_000L) + now.Nanoseconds;
    }

    private static bool ProbeThreadClock()
    {
        if (!OperatingSystem.IsLinux())
        {
            return false;
        }

        try
        {
            return Native.ClockGetTime(ClockThreadCpuTimeId, out _) == 0;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;
        }
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    private static class Native
    {
        [DllImport("libc.so.6", EntryPoint = "clock_gettime", ExactSpelling = true)]
        [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
        public static extern int ClockGetTime(int clockId, out TimeSpec time);
    }
}
