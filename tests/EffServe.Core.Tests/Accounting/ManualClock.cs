using EffServe.Core.Accounting;

namespace EffServe.Core.Tests.Accounting;

/// <summary>A clock that moves only when told: timestamps in nanoseconds.</summary>
internal sealed class ManualClock : TimeProvider
{
    private long _nanoseconds = 1_000_000_000;

    public override long TimestampFrequency => 1_000_000_000;

    public override long GetTimestamp() => _nanoseconds;

    public override DateTimeOffset GetUtcNow() => new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero).AddTicks(_nanoseconds / 100);

    public void Advance(TimeSpan by) => _nanoseconds += by.Ticks * 100;

    public void AdvanceNanoseconds(long by) => _nanoseconds += by;
}

/// <summary>An energy counter whose reading the test sets.</summary>
internal sealed class FakeCounter(Device device = Device.Cpu) : IEnergyCounter
{
    public long Nanojoules { get; set; }

    public string Name => "fake";

    public Device Device => device;

    public string Description => "a test counter";

    public long ReadNanojoules() => Nanojoules;

    public void Dispose()
    {
    }
}
