using System.IO.Compression;
using EffServe.Gateway.Tests.Support;
using Grpc.Core;

namespace EffServe.Gateway.Tests.Attacks;

/// <summary>
/// Compressed first messages that inflate far past the message limit (64 MiB by default): deflate
/// 96 KB → 96 MiB and gzip 1 MiB → 1 GiB, forty at once. With the door open each is refused
/// RESOURCE_EXHAUSTED as soon as its inflated size passes the limit; with the door closed a caller
/// without credentials is refused UNAUTHENTICATED before a byte of its message is read.
/// </summary>
[Collection(nameof(UnderAttack))]
public sealed class DecompressionBombTests(AttackReplicas replicas)
{
    private const int Bombs = 40;

    // Built once, before any measurement: a ModelInferRequest naming digits whose id (field 3) is
    // that many zero bytes, compressed.
    private static readonly Lazy<byte[]> s_deflate = new(() => Bomb(96L * 1024 * 1024, s => new ZLibStream(s, CompressionLevel.SmallestSize, leaveOpen: true)));
    private static readonly Lazy<byte[]> s_gzip = new(() => Bomb(1024L * 1024 * 1024, s => new GZipStream(s, CompressionLevel.SmallestSize, leaveOpen: true)));

    private static byte[] Bomb(long zeros, Func<Stream, Stream> compressor)
    {
        using var output = new MemoryStream();
        using (var compress = compressor(output))
        {
            compress.Write([0x0A, 6, .. "digits"u8]);
            var length = new byte[10];
            var n = 0;
            for (var v = (ulong)zeros; ; v >>= 7)
            {
                length[n++] = (byte)(v < 0x80 ? v : (v & 0x7F) | 0x80);
                if (v < 0x80)
                {
                    break;
                }
            }

            compress.Write([0x1A, .. length.AsSpan(0, n)]);
            var chunk = new byte[1024 * 1024];
            for (long left = zeros; left > 0; left -= chunk.Length)
            {
                compress.Write(chunk, 0, (int)Math.Min(chunk.Length, left));
            }
        }

        return RawGrpc.Frame(output.ToArray(), flag: 1);
    }

    private static (byte[] Body, string Encoding) BombNumber(int i) => i % 2 == 0 ? (s_deflate.Value, "deflate") : (s_gzip.Value, "gzip");

    [Fact]
    public async Task CompressedBombs_DoorOpen_RefusedResourceExhaustedWithoutHarm()
    {
        _ = (s_deflate.Value, s_gzip.Value);
        AttackContext.Report($"bombs: deflate {s_deflate.Value.Length} bytes → 96 MiB, gzip {s_gzip.Value.Length} bytes → 1 GiB");
        var replies = new List<RawReply>();
        await AttackHarness.RunAsync(replicas, async attack =>
        {
            var all = await Task.WhenAll(Enumerable.Range(0, Bombs).Select(async i =>
            {
                var (body, encoding) = BombNumber(i);
                return await RawGrpc.PostAsync(attack.Address, RawGrpc.Inference + "ModelInfer", body, new Dictionary<string, string> { ["grpc-encoding"] = encoding });
            }));
            replies.AddRange(all);
        });

        Assert.Equal(Bombs, replies.Count);
        Assert.All(replies, r =>
        {
            Assert.Equal(StatusCode.ResourceExhausted, r.Status);
            Rpc.AssertMentions(r.Message, "inflates to more than");
        });
    }

    [Fact]
    public async Task CompressedBombs_DoorClosedNoCredentials_UnauthenticatedBeforeTheMessageIsRead()
    {
        _ = (s_deflate.Value, s_gzip.Value);
        var replies = new List<RawReply>();
        var unfinished = new List<string>();
        await AttackHarness.RunAsync(
            replicas,
            async attack =>
            {
                // Forty whole bombs without credentials, all at once.
                var all = await Task.WhenAll(Enumerable.Range(0, Bombs).Select(async i =>
                {
                    var (body, encoding) = BombNumber(i);
                    return await RawGrpc.PostAsync(attack.Address, RawGrpc.Inference + "ModelInfer", body, new Dictionary<string, string> { ["grpc-encoding"] = encoding });
                }));
                replies.AddRange(all);

                // And bombs whose message never ends: the answer cannot wait for it.
                await using var raw = await RawH2.ConnectAsync(attack.Address);
                raw.StartReading();
                for (var id = 1; id <= 19; id += 2)
                {
                    var (body, encoding) = BombNumber(id / 2);
                    await raw.HeadersAsync(id, "ModelInfer", extra: ("grpc-encoding", encoding));
                    await raw.WriteDataAsync(id, body[..(32 * 1024)], endStream: false);
                }

                for (var id = 1; id <= 19; id += 2)
                {
                    await raw.OutcomeAsync(id, TimeSpan.FromSeconds(10));
                }

                // Kestrel ends a stream whose request it did not read whole with RST_STREAM
                // (NO_ERROR), and now and then that frame overtakes the answer's HEADERS on the wire;
                // the answer still arrives. Read every outcome once the connection has settled.
                await Task.Delay(TimeSpan.FromMilliseconds(300), Rpc.Ct);
                for (var id = 1; id <= 19; id += 2)
                {
                    unfinished.Add($"{raw.OutcomeOf(id)}: {raw.Messages.GetValueOrDefault(id)}");
                }
            },
            door: true);

        Assert.Equal(Bombs, replies.Count);
        Assert.All(replies, r =>
        {
            Assert.Equal(StatusCode.Unauthenticated, r.Status);
            Rpc.AssertMentions(r.Message, "credentials");
        });
        Assert.All(unfinished, outcome => Assert.StartsWith($"grpc-status {(int)StatusCode.Unauthenticated}: ", outcome, StringComparison.Ordinal));
    }
}
