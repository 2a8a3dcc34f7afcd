using System.Buffers.Binary;
using System.Globalization;
using System.IO.Compression;
using System.Net;
using System.Net.Http.Headers;
using Grpc.Core;

namespace EffServe.Inference.Tests.Support;

/// <summary>What a server answered to a raw gRPC call: the status, its message as sent (percent-encoded) and decoded, and the body.</summary>
internal sealed record RawAnswer(StatusCode Status, string EncodedMessage, string Message, byte[] Body);

/// <summary>
/// gRPC below the client library, for bodies the test chooses byte by byte (messages no typed
/// client would write): HTTP/2 with prior knowledge over one connection that every call of the
/// client shares, as a gateway's would be, and the status read from the server's own headers or
/// trailers, never made up by a client. Each call is bounded by 30 s so that a hang fails the test.
/// </summary>
internal sealed class RawGrpcClient : IDisposable
{
    public const string Inference = "/inference.GRPCInferenceService/";

    private readonly Uri _server;
    private readonly HttpClient _client;

    public RawGrpcClient(Uri server)
    {
        _server = server;
        _client = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromSeconds(30) };
    }

    /// <summary>One gRPC frame: the compression flag, the 4-byte big-endian length, the message.</summary>
    public static byte[] Frame(ReadOnlySpan<byte> message, bool compressed = false)
    {
        var frame = new byte[5 + message.Length];
        frame[0] = compressed ? (byte)1 : (byte)0;
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(1), (uint)message.Length);
        message.CopyTo(frame.AsSpan(5));
        return frame;
    }

    /// <summary><paramref name="message"/> gzip-compressed, as a message sent with grpc-encoding gzip is.</summary>
    public static byte[] Gzip(ReadOnlySpan<byte> message)
    {
        using var buffer = new MemoryStream();
        using (var gzip = new GZipStream(buffer, CompressionLevel.Fastest, leaveOpen: true))
        {
            gzip.Write(message);
        }

        return buffer.ToArray();
    }

    /// <summary>Posts <paramref name="body"/> (whole frames) to <paramref name="method"/> (/package.Service/Method) and reads the answer.</summary>
    public async Task<RawAnswer> CallAsync(string method, byte[] body, IReadOnlyDictionary<string, string>? headers = null, CancellationToken cancellationToken = default)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(_server, method))
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
            Content = new ByteArrayContent(body),
        };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/grpc");
        request.Headers.TryAddWithoutValidation("te", "trailers");
        foreach (var (name, value) in headers ?? new Dictionary<string, string>())
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }

        using var response = await _client.SendAsync(request, cancellationToken);
        var content = await response.Content.ReadAsByteArrayAsync(cancellationToken);
        var status = Find(response, "grpc-status") ?? throw new InvalidOperationException($"The answer to {method} has no grpc-status (HTTP {(int)response.StatusCode}).");
        var message = Find(response, "grpc-message") ?? "";
        return new RawAnswer((StatusCode)int.Parse(status, CultureInfo.InvariantCulture), message, Uri.UnescapeDataString(message), content);
    }

    public void Dispose() => _client.Dispose();

    private static string? Find(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) || response.TrailingHeaders.TryGetValues(name, out values) ? values.First() : null;
}
