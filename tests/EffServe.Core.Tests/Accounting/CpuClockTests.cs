using EffServe.Core.Accounting;

namespace EffServe.Core.Tests.Accounting;

public sealed class CpuClockTests
{
    [Fact]
    public void ThreadClock_OnLinux_IsAvailable()
    {
        Assert.Equal(OperatingSystem.IsLinux(), CpuClock.HasThreadClock);
        Assert.Equal(OperatingSystem.IsLinux() ? CpuClockScope.Thread : CpuClockScope.Process, CpuClock.Best(CpuClockScope.Thread));
        Assert.Equal(CpuClockScope.Process, CpuClock.Best(CpuClockScope.Process));
    }

    [Theory]
    [InlineData(CpuClockScope.Thread)]
    [InlineData(CpuClockScope.Process)]
    public void Nanoseconds_WorkOnThisThread_Advances(CpuClockScope scope)
    {
        var before = CpuClock.Nanoseconds(scope);
        var x = 0.0;
        for (var i = 0; i < 5_000_000; i++)
        {
            x += Math.Sqrt(i);
        }

        var after = CpuClock.Nanoseconds(scope);

        Assert.True(x > 0);
        Assert.True(after > before, $"The {scope} CPU clock did not advance over a busy loop ({before} → {after}).");
    }

    [Fact]
    public void ThreadClock_WhileThisThreadSleeps_BarelyAdvances()
    {
        Assert.SkipUnless(CpuClock.HasThreadClock, "The thread CPU clock exists on Linux only.");
        var before = CpuClock.Nanoseconds(CpuClockScope.Thread);
        Thread.Sleep(200);
        var after = CpuClock.Nanoseconds(CpuClockScope.Thread);

        // Sleeping costs no CPU: far less than the 200 ms of wall time (not a timing assertion: an order of magnitude).
        Assert.True(after - before < 100_000_000, $"The thread clock counted {after - before} ns of CPU over a sleep.");
    }
}
