namespace EffServe.Core.Accounting;

/// <summary>
/// A hardware energy counter (RAPL, NVML): energy the device has used since the counter was
/// opened. Readings never go backwards; wrap-around of the hardware register is handled inside.
/// </summary>
public interface IEnergyCounter : IDisposable
{
    /// <summary>Short name for logs and attributes: <c>rapl</c>, <c>nvml</c>.</summary>
    string Name { get; }

    Device Device { get; }

    /// <summary>What the counter covers, for the start-up log (zones, GPU index).</summary>
    string Description { get; }

    /// <summary>Energy since the counter was opened, in nanojoules. Thread-safe.</summary>
    long ReadNanojoules();
}
