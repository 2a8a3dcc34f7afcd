using System.Diagnostics;
using EffServe.Gateway.Tests.Support;

namespace EffServe.Gateway.Tests.Attacks;

/// <summary>
/// PING and SETTINGS floods from clients that never read (their window is 0 and nothing is taken
/// off their sockets): every such frame asks for an acknowledgement the client never takes. The
/// gateway must stop reading such a client (its writes block) or end its connection, rather than
/// queue acknowledgements without bound.
/// </summary>
[Collection(nameof(UnderAttack))]
public sealed class ControlFrameFloodTests(AttackReplicas replicas)
{
    private const long MaxFlood = 256L * 1024 * 1024;

    private static readonly TimeSpan s_floodFor = TimeSpan.FromSeconds(8);

    /// <summary>Writes <paramref name="frames"/> (a batch of frames) again and again; how it ended and how much went.</summary>
    private static async Task<(string End, long Written)> FloodAsync(Uri address, byte[] frames)
    {
        await using var raw = await RawH2.ConnectAsync(address, initialWindow: 0);
        long written = 0;
        var clock = Stopwatch.StartNew();
        while (written < MaxFlood && clock.Elapsed < s_floodFor)
        {
            if (!await raw.TryWriteRawAsync(frames, TimeSpan.FromSeconds(2)))
            {
                // Blocked (the gateway takes no more from this client) or gone.
                return (raw.Closed.Task.IsCompleted ? "closed" : "blocked", written);
            }

            written += frames.Length;
        }

        return ("still accepting", written);
    }

    private static byte[] Repeat(byte[] frame, int times) => Enumerable.Repeat(frame, times).SelectMany(f => f).ToArray();

    [Fact]
    public async Task PingAndSettingsFloods_ClientNeverReads_GatewayStopsReadingOrCloses()
    {
        var pings = Repeat(RawH2.Frame(Http2.Type.Ping, 0, 0, RawH2.PingPayload(42)), 4096);
        var settings = Repeat(RawH2.Frame(Http2.Type.Settings, 0, 0, RawH2.SettingsPayload((Http2.Setting.HeaderTableSize, 4096), (Http2.Setting.EnablePush, 0))), 4096);
        var results = new List<(string Kind, string End, long Written)>();
        await AttackHarness.RunAsync(replicas, async attack =>
        {
            var floods = await Task.WhenAll(FloodAsync(attack.Address, pings), FloodAsync(attack.Address, settings), FloodAsync(attack.Address, pings));
            results.AddRange(floods.Select((f, i) => (i == 1 ? "SETTINGS" : "PING", f.End, f.Written)));
        });

        AttackContext.Report(string.Join("; ", results.Select(r => $"{r.Kind} flood: {r.End} after {r.Written / 1048576.0:F1} MiB")));
        Assert.All(results, r => Assert.NotEqual("still accepting", r.End));
    }
}
