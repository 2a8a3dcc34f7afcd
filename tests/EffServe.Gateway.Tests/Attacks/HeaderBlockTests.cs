using System.Diagnostics;
using EffServe.Gateway.Tests.Support;

namespace EffServe.Gateway.Tests.Attacks;

/// <summary>
/// Header blocks that never end: HEADERS without END_HEADERS held open on 1,000 connections, and
/// a flood of empty CONTINUATION frames on another. Kestrel ends every one of them (the request
/// headers timeout, its CONTINUATION limits), and holds little meanwhile.
/// </summary>
[Collection(nameof(UnderAttack))]
public sealed class HeaderBlockTests(AttackReplicas replicas)
{
    private const int Connections = 1000;

    [Fact]
    public async Task UnfinishedHeaderBlocksAndEmptyContinuationFlood_ConnectionsEndedMemoryBounded()
    {
        var ends = new List<string>();
        var flood = "";
        await AttackHarness.RunAsync(replicas, async attack =>
        {
            var block = RawH2.HeaderBlock(RawGrpc.Inference + "ModelInfer");
            var held = new List<RawH2>();
            try
            {
                foreach (var batch in Enumerable.Range(0, Connections).Chunk(50))
                {
                    held.AddRange(await Task.WhenAll(batch.Select(async _ =>
                    {
                        var raw = await RawH2.ConnectAsync(attack.Address);
                        raw.StartReading(acknowledgeSettings: false);
                        await raw.HeadersAsync(1, "ModelInfer", endHeaders: false);
                        return raw;
                    })));
                }

                // Empty CONTINUATION frames after an unfinished HEADERS, as fast as they are taken.
                await using var flooder = await RawH2.ConnectAsync(attack.Address);
                flooder.StartReading(acknowledgeSettings: false);
                await flooder.WriteFrameAsync(Http2.Type.Headers, 0, 1, block[..4]);
                var continuations = Enumerable.Repeat(RawH2.Frame(Http2.Type.Continuation, 0, 1, []), 4096).SelectMany(f => f).ToArray();
                long frames = 0;
                var clock = Stopwatch.StartNew();
                while (clock.Elapsed < TimeSpan.FromSeconds(15) && !flooder.Closed.Task.IsCompleted
                    && await flooder.TryWriteRawAsync(continuations, TimeSpan.FromSeconds(2)))
                {
                    frames += 4096;
                }

                flood = $"{frames} empty CONTINUATION frames taken in {clock.Elapsed.TotalSeconds:F1} s, then {await flooder.EndAsync(TimeSpan.FromSeconds(15))}";

                ends.AddRange(await Task.WhenAll(held.Select(raw => raw.EndAsync(TimeSpan.FromSeconds(20)))));
            }
            finally
            {
                foreach (var raw in held)
                {
                    await raw.DisposeAsync();
                }
            }
        });

        AttackContext.Report(flood);
        AttackContext.Report(string.Join("; ", ends.GroupBy(e => e).Select(g => $"{g.Count()} connections: {g.Key}")));
        Assert.Equal(Connections, ends.Count);
        Assert.All(ends, e => Assert.NotEqual("open", e));
        Assert.DoesNotContain("open", flood, StringComparison.Ordinal);
    }
}
