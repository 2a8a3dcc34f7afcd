using EffServe.Gateway.Tests.Support;
using Google.Protobuf;

namespace EffServe.Gateway.Tests.Attacks;

/// <summary>
/// Rapid reset on model calls: HEADERS, the whole first message, RST_STREAM, thousands of times on
/// one connection (a new one whenever the gateway ends it). Each reset ends one forwarded call
/// only: the replica connection every client shares stays up and no replica is marked failed.
/// </summary>
[Collection(nameof(UnderAttack))]
public sealed class RapidResetTests(AttackReplicas replicas)
{
    private const int Resets = 3000;

    [Fact]
    public async Task ModelCallsResetRightAfterTheirMessage_OtherClientsUnharmed()
    {
        var body = RawGrpc.Frame(Digits.Request(1).ToByteArray());
        var block = RawH2.HeaderBlock(RawGrpc.Inference + "ModelInfer");
        var ends = new List<string>();
        var sent = 0;
        var before = await Digits.InferenceCountAsync(replicas.First) + await Digits.InferenceCountAsync(replicas.Second);
        await AttackHarness.RunAsync(replicas, async attack =>
        {
            while (sent < Resets)
            {
                await using var raw = await RawH2.ConnectAsync(attack.Address);
                raw.StartReading();
                var id = 1;
                while (sent < Resets && !raw.Closed.Task.IsCompleted)
                {
                    // One write per 50 streams: frames as fast as the socket takes them.
                    using var burst = new MemoryStream();
                    for (var i = 0; i < 50 && sent < Resets; i++, sent++, id += 2)
                    {
                        burst.Write(RawH2.Frame(Http2.Type.Headers, Http2.Flags.EndHeaders, id, block));
                        burst.Write(RawH2.Frame(Http2.Type.Data, Http2.Flags.EndStream, id, body));
                        burst.Write(RawH2.Frame(Http2.Type.RstStream, 0, id, [0, 0, 0, Http2.Error.Cancel]));
                    }

                    if (!await raw.TryWriteRawAsync(burst.ToArray(), TimeSpan.FromSeconds(10)))
                    {
                        break;
                    }
                }

                // A PING after the last reset: its answer means the gateway has taken every frame before it.
                if (!raw.Closed.Task.IsCompleted && await raw.TryWriteRawAsync(RawH2.Frame(Http2.Type.Ping, 0, 0, RawH2.PingPayload(1)), TimeSpan.FromSeconds(10)))
                {
                    await Eventually.UntilAsync(() => raw.FramesRead.ContainsKey(Http2.Type.Ping) || raw.Closed.Task.IsCompleted, "the gateway answers the PING after the resets");
                }

                // The connection ends (with GOAWAY, or a TCP reset that can overtake it while the
                // attacker is still writing), or stays open answering; either way not in silence.
                var end = raw.Closed.Task.IsCompleted ? await raw.EndAsync(TimeSpan.Zero) : raw.FramesRead.ContainsKey(Http2.Type.Ping) ? "open, answering" : "open, silent";
                ends.Add($"{end} after stream {id - 2} ({raw.Statuses.Count} statuses, {raw.Resets.Count} resets seen)");
            }
        });

        var ran = await Digits.InferenceCountAsync(replicas.First) + await Digits.InferenceCountAsync(replicas.Second) - before;
        AttackContext.Report($"{sent} calls reset; inferences the replicas ran meanwhile (the well-behaved client's included): {ran}; connections: {string.Join("; ", ends)}");
        Assert.All(ends, end => Assert.DoesNotMatch("^open, silent", end));
    }
}
