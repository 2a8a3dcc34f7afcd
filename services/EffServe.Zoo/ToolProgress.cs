namespace EffServe.Zoo;

/// <summary>Where a zoo tool reports how far its long steps have come (the CLI draws progress bars).</summary>
public interface IToolProgress
{
    /// <summary>Starts a step of <paramref name="total"/> units; dispose it when the step ends.</summary>
    IProgressStep Start(string description, double total);
}

/// <summary>One step of a tool's work.</summary>
public interface IProgressStep : IDisposable
{
    void Advance(double amount);
}

/// <summary>Reports nothing: for library callers and tests that draw no progress.</summary>
public sealed class SilentProgress : IToolProgress, IProgressStep
{
    public static SilentProgress Instance { get; } = new();

    public IProgressStep Start(string description, double total) => this;

    public void Advance(double amount)
    {
    }

    public void Dispose()
    {
    }
}
