using System.Diagnostics;

namespace EffServe.Gateway.Tests.Support;

/// <summary>Waiting, with a limit, for something the gateway does in the background (a probe round).</summary>
internal static class Eventually
{
    public static readonly TimeSpan Patience = TimeSpan.FromSeconds(15);

    /// <summary>Polls <paramref name="condition"/> every 10 ms; how long it took to hold, or a failure naming <paramref name="what"/> after <see cref="Patience"/>.</summary>
    public static async Task<TimeSpan> UntilAsync(Func<bool> condition, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(clock.Elapsed < Patience, $"Gave up waiting: {what}.");
            await Task.Delay(TimeSpan.FromMilliseconds(10), Rpc.Ct);
        }

        return clock.Elapsed;
    }
}
