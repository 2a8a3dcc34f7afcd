using System.Buffers.Binary;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using Google.Protobuf;
using Grpc.Core;

namespace EffServe.Gateway.Tests.Support;

/// <summary>What a server answered to a raw gRPC request: the status, its message, and the header and trailer blocks.</summary>
internal sealed record RawReply(StatusCode Status, string Message, HttpResponseHeaders Headers, HttpResponseHeaders Trailers, byte[] Body)
{
    /// <summary>A header of the response, looked for among the headers and then the trailers; null when absent.</summary>
    public string? Find(string name) =>
        Headers.TryGetValues(name, out var values) || Trailers.TryGetValues(name, out values) ? values.First() : null;
}

/// <summary>
/// gRPC below the client library: bodies whose bytes the test chooses (frames the grpc-dotnet
/// client would never write), sent over HTTP/2 with prior knowledge, with exact headers. Every call
/// is bounded by a 10 s timeout so that a server that hangs fails the test instead of stalling it.
/// </summary>
internal static class RawGrpc
{
    public const string Inference = "/inference.GRPCInferenceService/";

    /// <summary>One frame: the compression flag, the 4-byte big-endian length (the true one unless <paramref name="declaredLength"/>), the message.</summary>
    public static byte[] Frame(ReadOnlySpan<byte> message, byte flag = 0, uint? declaredLength = null)
    {
        var frame = new byte[5 + message.Length];
        frame[0] = flag;
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(1), declaredLength ?? (uint)message.Length);
        message.CopyTo(frame.AsSpan(5));
        return frame;
    }

    public static byte[] Frame(IMessage message, byte flag = 0) => Frame(message.ToByteArray(), flag);

    public static async Task<RawReply> PostAsync(Uri server, string path, byte[] body, IReadOnlyDictionary<string, string>? headers = null)
    {
        using var handler = new SocketsHttpHandler { UseProxy = false };
        using var client = new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(10) };
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(server, path))
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

        using var response = await client.SendAsync(request, Rpc.Ct);
        var content = await response.Content.ReadAsByteArrayAsync(Rpc.Ct);
        var reply = new RawReply(StatusCode.Unknown, "", response.Headers, response.TrailingHeaders, content);
        var status = reply.Find("grpc-status") ?? throw new InvalidOperationException($"The answer to {path} has no grpc-status (HTTP {(int)response.StatusCode}).");
        return reply with
        {
            Status = (StatusCode)int.Parse(status, CultureInfo.InvariantCulture),
            Message = Uri.UnescapeDataString(reply.Find("grpc-message") ?? ""),
        };
    }
}
