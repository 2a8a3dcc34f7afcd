using EffServe.Gateway.Tests.Support;
using Google.Protobuf;

namespace EffServe.Gateway.Tests.Attacks;

/// <summary>
/// HTTP/2's rules broken on purpose, each on a connection of its own: a reused, a decreasing and
/// an even stream id, WINDOW_UPDATE overflow and zero increments, DATA on an idle stream and past
/// the window, and floods of SETTINGS, PING and RST_STREAM. The breach is answered with GOAWAY
/// (or a stream's RST_STREAM) carrying the error; a flood of legal frames leaves the connection
/// answering calls, or ends it with GOAWAY. Nothing is met with silence.
/// </summary>
[Collection(nameof(UnderAttack))]
public sealed class ProtocolRuleTests(AttackReplicas replicas)
{
    private static readonly TimeSpan s_patience = TimeSpan.FromSeconds(10);

    private static readonly byte[] s_body = RawGrpc.Frame(Digits.Request(2).ToByteArray());

    /// <summary>How a connection that broke a connection rule ended.</summary>
    private static async Task<string> BreakAsync(Uri gateway, Func<RawH2, Task> act, int? streamToWatch = null)
    {
        await using var raw = await RawH2.ConnectAsync(gateway);
        raw.StartReading();
        try
        {
            await act(raw);
        }
        catch (IOException)
        {
            // the gateway ended the connection while the breach was still being written
        }

        if (streamToWatch is { } id)
        {
            return await raw.OutcomeAsync(id, s_patience);
        }

        return await raw.EndAsync(s_patience);
    }

    /// <summary>A flood of legal frames, then a call on the same connection: how the call ended.</summary>
    private static async Task<string> FloodThenCallAsync(Uri gateway, byte[] frame, int count, Func<RawH2, Task>? before = null)
    {
        await using var raw = await RawH2.ConnectAsync(gateway);
        raw.StartReading();
        if (before is not null)
        {
            await before(raw);
        }

        var batch = Enumerable.Repeat(frame, 1000).SelectMany(f => f).ToArray();
        for (var sent = 0; sent < count && !raw.Closed.Task.IsCompleted; sent += 1000)
        {
            if (!await raw.TryWriteRawAsync(batch, s_patience))
            {
                break;
            }
        }

        if (raw.Closed.Task.IsCompleted)
        {
            return await raw.EndAsync(TimeSpan.Zero);
        }

        await raw.TryWriteRawAsync(RawH2.Frame(Http2.Type.Headers, Http2.Flags.EndHeaders, 101, RawH2.HeaderBlock(RawGrpc.Inference + "ModelInfer")), s_patience);
        await raw.TryWriteRawAsync(RawH2.Frame(Http2.Type.Data, Http2.Flags.EndStream, 101, s_body), s_patience);
        return await raw.OutcomeAsync(101, s_patience);
    }

    [Fact]
    public async Task BrokenRulesAndFloods_AnsweredWithErrorsNeverSilence()
    {
        var seen = new Dictionary<string, string>();
        await AttackHarness.RunAsync(replicas, async attack =>
        {
            var at = attack.Address;
            seen["reused stream id"] = await BreakAsync(at, async raw =>
            {
                await raw.SendAsync(1, "ModelInfer", s_body);
                await raw.OutcomeAsync(1, s_patience);
                await raw.SendAsync(1, "ModelInfer", s_body);
            });
            seen["decreasing stream id"] = await BreakAsync(at, async raw =>
            {
                await raw.SendAsync(5, "ModelInfer", s_body);
                await raw.SendAsync(3, "ModelInfer", s_body);
            });
            seen["even stream id"] = await BreakAsync(at, raw => raw.SendAsync(2, "ModelInfer", s_body));
            seen["connection WINDOW_UPDATE overflow"] = await BreakAsync(at, async raw =>
            {
                await raw.WindowUpdateAsync(0, int.MaxValue);
                await raw.WindowUpdateAsync(0, int.MaxValue);
            });
            seen["connection WINDOW_UPDATE of 0"] = await BreakAsync(at, raw => raw.WindowUpdateAsync(0, 0));
            seen["stream WINDOW_UPDATE overflow"] = await BreakAsync(
                at,
                async raw =>
                {
                    await raw.HeadersAsync(1, "ModelInfer");
                    await raw.WindowUpdateAsync(1, int.MaxValue);
                    await raw.WindowUpdateAsync(1, int.MaxValue);
                },
                streamToWatch: 1);
            seen["stream WINDOW_UPDATE of 0"] = await BreakAsync(
                at,
                async raw =>
                {
                    await raw.HeadersAsync(1, "ModelInfer");
                    await raw.WindowUpdateAsync(1, 0);
                },
                streamToWatch: 1);
            seen["DATA on an idle stream"] = await BreakAsync(at, raw => raw.WriteFrameAsync(Http2.Type.Data, 0, 7, [0, 0, 0, 0, 0]));
            seen["DATA past the windows"] = await BreakAsync(
                at,
                async raw =>
                {
                    // 1 MiB + 64 KiB in one write: past the stream window (768 KiB) and the
                    // connection's (1 MiB) unless the gateway read and credited in between.
                    await raw.HeadersAsync(1, "ModelInfer");
                    var message = new byte[(1024 * 1024) + (64 * 1024) - 5];
                    var frames = RawGrpc.Frame(message).Chunk(Http2.DefaultMaxFrameSize).ToList();
                    await raw.WriteRawAsync(frames.SelectMany((f, i) => RawH2.Frame(Http2.Type.Data, i == frames.Count - 1 ? Http2.Flags.EndStream : (byte)0, 1, f)).ToArray());
                },
                streamToWatch: 1);
            seen["RST_STREAM on an idle stream"] = await BreakAsync(at, raw => raw.RstStreamAsync(9, Http2.Error.Cancel));
            seen["20,000 SETTINGS, then a call"] = await FloodThenCallAsync(at, RawH2.Frame(Http2.Type.Settings, 0, 0, RawH2.SettingsPayload((Http2.Setting.HeaderTableSize, 4096))), 20_000);
            seen["100,000 PINGs, then a call"] = await FloodThenCallAsync(at, RawH2.Frame(Http2.Type.Ping, 0, 0, RawH2.PingPayload(7)), 100_000);
            seen["100,000 RST_STREAM on a closed stream, then a call"] = await FloodThenCallAsync(
                at,
                RawH2.Frame(Http2.Type.RstStream, 0, 1, [0, 0, 0, Http2.Error.Cancel]),
                100_000,
                async raw =>
                {
                    await raw.SendAsync(1, "ModelInfer", s_body);
                    await raw.OutcomeAsync(1, s_patience);
                });
        });

        foreach (var (what, outcome) in seen)
        {
            AttackContext.Report($"{what}: {outcome}");
        }

        var protocolError = $"GOAWAY {Http2.Error.ProtocolError}";
        Assert.Contains(seen["reused stream id"], new[] { protocolError, $"GOAWAY {Http2.Error.StreamClosed}" });
        Assert.Contains(seen["decreasing stream id"], new[] { protocolError, $"GOAWAY {Http2.Error.StreamClosed}" }); // Kestrel reads a lower id as a closed stream
        Assert.Equal(protocolError, seen["even stream id"]);
        Assert.Equal($"GOAWAY {Http2.Error.FlowControlError}", seen["connection WINDOW_UPDATE overflow"]);
        Assert.Equal(protocolError, seen["connection WINDOW_UPDATE of 0"]);
        Assert.Contains(seen["stream WINDOW_UPDATE overflow"], new[] { $"RST {Http2.Error.FlowControlError}", $"GOAWAY {Http2.Error.FlowControlError}" });
        Assert.Contains(seen["stream WINDOW_UPDATE of 0"], new[] { $"RST {Http2.Error.ProtocolError}", protocolError });
        Assert.Equal(protocolError, seen["DATA on an idle stream"]);
        Assert.Equal(protocolError, seen["RST_STREAM on an idle stream"]);

        // Past the windows: a flow-control error, or (when the gateway read in time) the message's own answer.
        Assert.Contains(seen["DATA past the windows"], new[] { $"RST {Http2.Error.FlowControlError}", $"GOAWAY {Http2.Error.FlowControlError}", "grpc-status 3" });

        // Floods of legal frames: the connection still answers, or was ended with GOAWAY.
        foreach (var flood in seen.Keys.Where(k => k.EndsWith("then a call", StringComparison.Ordinal)))
        {
            Assert.True(seen[flood] == "grpc-status 0" || seen[flood].StartsWith("GOAWAY", StringComparison.Ordinal), $"{flood}: {seen[flood]}");
        }
    }
}
