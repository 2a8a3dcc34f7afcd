using System.Collections.Concurrent;
using System.Globalization;
using System.IO.Compression;
using System.Net;
using System.Net.Http.Headers;
using EffServe.Gateway.Routing;
using EffServe.Gateway.Tests.Support;
using Google.Protobuf;
using Grpc.Core;

namespace EffServe.Gateway.Tests.Attacks;

/// <summary>
/// 3,000 mutated ModelInfer requests through the gateway, from a fixed seed: bits flipped, bytes
/// overwritten or inserted, messages cut short, model names duplicated, frame lengths and flags
/// made up, messages compressed (gzip, deflate) with or without saying so, and routing headers
/// naming any model. The gateway lives, answers every one with a gRPC status, never UNKNOWN or
/// INTERNAL, every refusal with a message, and a well-formed call still works after.
/// </summary>
[Collection(nameof(UnderAttack))]
public sealed class GatewayFuzzTests(AttackReplicas replicas)
{
    private const int Cases = 3000;
    private const int Seed = 20_240_614;

    private sealed record Case(int Number, byte[] Body, IReadOnlyList<(string Name, string Value)> Headers, string Mutations);

    private sealed record Answer(Case Case, StatusCode? Status, string Message, string Transport);

    private static readonly string[] s_models = ["digits", "shapes", "", "nope", "DIGITS", "digits\u00e9", new string('m', 600)];

    private static Case Mutate(Random random, int number)
    {
        var message = Digits.Request(random.Next(100), batch: 1 + random.Next(3)).ToByteArray();
        var headers = new List<(string, string)>();
        var done = new List<string>();
        byte flag = 0;
        uint? declared = null;
        var trailing = Array.Empty<byte>();
        var operations = 1 + random.Next(3);
        for (var i = 0; i < operations; i++)
        {
            switch (random.Next(10))
            {
                case 0:
                    for (var b = 0; b < 1 + random.Next(4); b++)
                    {
                        var at = random.Next(message.Length);
                        message[at] ^= (byte)(1 << random.Next(8));
                    }

                    done.Add("flip");
                    break;
                case 1:
                    message = message[..random.Next(message.Length + 1)];
                    done.Add("truncate");
                    break;
                case 2 when message.Length > 0:
                    message[random.Next(message.Length)] = (byte)random.Next(256);
                    done.Add("overwrite");
                    break;
                case 3:
                    var insert = new byte[1 + random.Next(8)];
                    random.NextBytes(insert);
                    var where = random.Next(message.Length + 1);
                    message = [.. message[..where], .. insert, .. message[where..]];
                    done.Add("insert");
                    break;
                case 4:
                    var name = System.Text.Encoding.UTF8.GetBytes(s_models[random.Next(s_models.Length)]);
                    byte[] field = [0x0A, .. Varint((ulong)name.Length), .. name];
                    message = random.Next(2) == 0 ? [.. message, .. field] : [.. field, .. message];
                    done.Add("duplicate field 1");
                    break;
                case 5:
                    declared = random.Next(4) switch
                    {
                        0 => (uint)random.Next(),
                        1 => uint.MaxValue,
                        _ => (uint)Math.Max(0, message.Length + random.Next(-8, 9)),
                    };
                    done.Add("frame length");
                    break;
                case 6:
                    flag = (byte)(random.Next(4) == 0 ? random.Next(256) : random.Next(2));
                    done.Add("flag");
                    break;
                case 7:
                    var gzip = random.Next(2) == 0;
                    message = Compress(message, gzip);
                    if (random.Next(5) > 0)
                    {
                        flag = 1;
                    }

                    if (random.Next(5) > 0)
                    {
                        headers.Add(("grpc-encoding", random.Next(6) switch { 0 => "snappy", 1 => "identity", _ => gzip ? "gzip" : "deflate" }));
                    }

                    done.Add(gzip ? "gzip" : "deflate");
                    break;
                case 8:
                    headers.Add((CallRouter.ModelHeader, s_models[random.Next(s_models.Length)].Replace('\u00e9', 'e')));
                    done.Add("routing header");
                    break;
                default:
                    trailing = new byte[random.Next(12)];
                    random.NextBytes(trailing);
                    done.Add("trailing bytes");
                    break;
            }
        }

        return new Case(number, [.. RawGrpc.Frame(message, flag, declared), .. trailing], headers, string.Join("+", done));
    }

    private static byte[] Compress(byte[] message, bool gzip)
    {
        using var output = new MemoryStream();
        using (Stream compress = gzip ? new GZipStream(output, CompressionLevel.Fastest, leaveOpen: true) : new ZLibStream(output, CompressionLevel.Fastest, leaveOpen: true))
        {
            compress.Write(message);
        }

        return output.ToArray();
    }

    private static byte[] Varint(ulong value)
    {
        var bytes = new List<byte>();
        for (; value >= 0x80; value >>= 7)
        {
            bytes.Add((byte)(value | 0x80));
        }

        bytes.Add((byte)value);
        return [.. bytes];
    }

    private static async Task<Answer> PostAsync(HttpClient client, Uri server, Case c)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(server, RawGrpc.Inference + "ModelInfer"))
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Content = new ByteArrayContent(c.Body),
        };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/grpc");
        request.Headers.TryAddWithoutValidation("te", "trailers");
        foreach (var (name, value) in c.Headers)
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }

        try
        {
            using var response = await client.SendAsync(request, Rpc.Ct);
            _ = await response.Content.ReadAsByteArrayAsync(Rpc.Ct);
            string? Find(string name) => response.Headers.TryGetValues(name, out var v) || response.TrailingHeaders.TryGetValues(name, out v) ? v.First() : null;
            var status = Find("grpc-status");
            return status is null
                ? new Answer(c, null, "", $"HTTP {(int)response.StatusCode} without grpc-status")
                : new Answer(c, (StatusCode)int.Parse(status, CultureInfo.InvariantCulture), Uri.UnescapeDataString(Find("grpc-message") ?? ""), "");
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or IOException)
        {
            return new Answer(c, null, "", $"{e.GetType().Name}: {e.GetBaseException().Message}");
        }
    }

    [Fact]
    public async Task ThreeThousandMutatedModelInfers_EveryAnswerAStatusWithMessage()
    {
        var random = new Random(Seed);
        var cases = Enumerable.Range(0, Cases).Select(i => Mutate(random, i)).ToList();
        var answers = new ConcurrentBag<Answer>();
        var fromReplica = new List<Answer>();
        await AttackHarness.RunAsync(replicas, async attack =>
        {
            using var handler = new SocketsHttpHandler { UseProxy = false, EnableMultipleHttp2Connections = true };
            using var client = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(10) };
            var next = -1;
            await Task.WhenAll(Enumerable.Range(0, 8).Select(async _ =>
            {
                int i;
                while ((i = Interlocked.Increment(ref next)) < cases.Count)
                {
                    answers.Add(await PostAsync(client, attack.Address, cases[i]));
                }
            }));

            // An UNKNOWN or INTERNAL answer is sent again straight to a replica (without the routing
            // header, which only the gateway reads): if the replica alone answers the same, it came
            // from the replica.
            foreach (var bad in answers.Where(a => a.Status is StatusCode.Unknown or StatusCode.Internal).OrderBy(a => a.Case.Number))
            {
                var direct = await PostAsync(client, replicas.First.Address, bad.Case with { Headers = bad.Case.Headers.Where(h => h.Name != CallRouter.ModelHeader).ToList() });
                if (direct.Status is StatusCode.Unknown or StatusCode.Internal)
                {
                    fromReplica.Add(bad);
                }
            }
        });

        AttackContext.Report($"{Cases} cases, seed {Seed}: " + string.Join(", ", answers.GroupBy(a => a.Status?.ToString() ?? a.Transport).OrderByDescending(g => g.Count()).Select(g => $"{g.Key} {g.Count()}")));
        foreach (var a in answers.Where(a => a.Status is null or StatusCode.Unknown or StatusCode.Internal).OrderBy(a => a.Case.Number).Take(5))
        {
            AttackContext.Report($"case {a.Case.Number} ({a.Case.Mutations}): {a.Status?.ToString() ?? a.Transport} {a.Message}");
        }

        Assert.Equal(Cases, answers.Count);
        var noStatus = answers.Where(a => a.Status is null).ToList();
        Assert.True(noStatus.Count == 0, $"{noStatus.Count} answers carried no gRPC status, first: case {noStatus.FirstOrDefault()?.Case.Number} ({noStatus.FirstOrDefault()?.Case.Mutations}): {noStatus.FirstOrDefault()?.Transport}");
        var silent = answers.Where(a => a.Status is { } s && s != StatusCode.OK && string.IsNullOrWhiteSpace(a.Message)).ToList();
        Assert.True(silent.Count == 0, $"{silent.Count} refusals carried no message, first: case {silent.FirstOrDefault()?.Case.Number} ({silent.FirstOrDefault()?.Case.Mutations}): {silent.FirstOrDefault()?.Status}");
        var unknown = answers.Where(a => a.Status is StatusCode.Unknown or StatusCode.Internal).ToList();
        var fromGateway = unknown.Except(fromReplica).ToList();
        Assert.True(fromGateway.Count == 0, $"{fromGateway.Count} answers were UNKNOWN or INTERNAL from the gateway itself, first: case {fromGateway.FirstOrDefault()?.Case.Number} ({fromGateway.FirstOrDefault()?.Case.Mutations}): {fromGateway.FirstOrDefault()?.Status} {fromGateway.FirstOrDefault()?.Message}");

        // Depends on the inference service answering malformed protobuf INVALID_ARGUMENT (a change to
        // the service on its own branch): until it lands, these come from the replica.
        Assert.True(fromReplica.Count == 0, $"{fromReplica.Count} answers were UNKNOWN or INTERNAL from the replica, first: case {fromReplica.FirstOrDefault()?.Case.Number} ({fromReplica.FirstOrDefault()?.Case.Mutations}): {fromReplica.FirstOrDefault()?.Status} {fromReplica.FirstOrDefault()?.Message}");
    }
}
