using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Yarp.ReverseProxy.Forwarder;

namespace EffServe.GatewayBench;

/// <summary>
/// The diagnostic arm yarp-bare: Kestrel (h2c) and YARP's IHttpForwarder with the gateway's handler
/// settings and nothing else: no routing, no door, no body buffering, no model peeking, the default
/// transformer. The gap between it and the gateway is EffServe's own code; the gap between it and
/// nginx is the .NET stack's. Switches model code changes the gateway could make:
/// <c>--inline</c> runs Kestrel's transport and application continuations on the socket thread
/// (SocketTransportOptions.UnsafePreferInlineScheduling; pair it with
/// DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1), <c>--buffer</c> reads the whole request into a
/// MemoryStream first (waiting for the end of the request stream), as the gateway's unary path
/// does; <c>--peek</c> reads only the first gRPC frame (prefix and message) and forwards it
/// followed by the rest of the body, as the gateway's streaming path does; <c>--wrap</c> only puts
/// the same pass-through stream in front of the body, reading nothing first (the cost of the wrapper).
/// </summary>
internal static class BareYarp
{
    public const string Verb = "serve-yarp";

    private static readonly ForwarderRequestConfig s_config = new()
    {
        Version = HttpVersion.Version20,
        VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        ActivityTimeout = TimeSpan.FromMinutes(10),
    };

    /// <summary>Serves until killed: <c>serve-yarp --urls http://127.0.0.1:P --destination http://127.0.0.1:Q [--Key=Value ...]</c>.</summary>
    public static async Task<int> RunAsync(string[] args)
    {
        var destination = "";
        var inline = false;
        var buffer = false;
        var peek = false;
        var wrap = false;
        var rest = new List<string>();
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--destination" when i + 1 < args.Length:
                    destination = args[++i];
                    break;
                case "--inline":
                    inline = true;
                    break;
                case "--buffer":
                    buffer = true;
                    break;
                case "--peek":
                    peek = true;
                    break;
                case "--wrap":
                    wrap = true;
                    break;
                default:
                    rest.Add(args[i]);
                    break;
            }
        }

        if (destination.Length == 0)
        {
            await Console.Error.WriteLineAsync($"usage: {Verb} --urls http://127.0.0.1:P --destination http://127.0.0.1:Q").ConfigureAwait(false);
            return 2;
        }

        var builder = WebApplication.CreateBuilder([.. rest]);
        builder.Services.AddHttpForwarder();
        builder.WebHost.ConfigureKestrel(k => k.ConfigureEndpointDefaults(e => e.Protocols = HttpProtocols.Http2));
        if (inline)
        {
            builder.WebHost.UseSockets(o => o.UnsafePreferInlineScheduling = true);
        }

        using var handler = new SocketsHttpHandler
        {
            UseProxy = false,
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            UseCookies = false,
            EnableMultipleHttp2Connections = true,
            ActivityHeadersPropagator = null,
            ConnectTimeout = TimeSpan.FromSeconds(5),
        };
        using var invoker = new HttpMessageInvoker(handler, disposeHandler: false);
        await using var app = builder.Build();
        var forwarder = app.Services.GetRequiredService<IHttpForwarder>();
        app.Run(async context =>
        {
            if (buffer)
            {
                var body = new MemoryStream();
                await context.Request.Body.CopyToAsync(body, context.RequestAborted).ConfigureAwait(false);
                body.Position = 0;
                context.Request.Body = body;
            }

            else if (peek)
            {
                var first = await FirstFrameAsync(context.Request.BodyReader, context.RequestAborted).ConfigureAwait(false);
                context.Request.Body = new ThenStream(first, context.Request.Body);
            }
            else if (wrap)
            {
                context.Request.Body = new ThenStream([], context.Request.Body);
            }

            await forwarder.SendAsync(context, destination, invoker, s_config, HttpTransformer.Default).ConfigureAwait(false);
        });
        await app.RunAsync().ConfigureAwait(false);
        return 0;
    }

    /// <summary>The bytes of the first gRPC frame (5-byte prefix and message), taken from the pipe.</summary>
    private static async Task<byte[]> FirstFrameAsync(PipeReader reader, CancellationToken cancellationToken)
    {
        while (true)
        {
            var result = await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
            var buffer = result.Buffer;
            long frame = -1;
            if (buffer.Length >= 5)
            {
                var prefix = new byte[5];
                buffer.Slice(0, 5).CopyTo(prefix);
                frame = 5 + (long)BinaryPrimitives.ReadUInt32BigEndian(prefix.AsSpan(1));
            }

            if ((frame >= 0 && buffer.Length >= frame) || result.IsCompleted)
            {
                var take = frame >= 0 ? Math.Min(frame, buffer.Length) : buffer.Length;
                var bytes = buffer.Slice(0, take).ToArray();
                reader.AdvanceTo(buffer.GetPosition(take));
                return bytes;
            }

            reader.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    /// <summary>Reads <c>first</c>, then the rest of <c>then</c>.</summary>
    private sealed class ThenStream(byte[] first, Stream then) : Stream
    {
        private int _offset;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => throw new NotSupportedException();
            set => throw new NotSupportedException();
        }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (_offset < first.Length)
            {
                var count = Math.Min(buffer.Length, first.Length - _offset);
                first.AsMemory(_offset, count).CopyTo(buffer);
                _offset += count;
                return count;
            }

            return await then.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
