using System.Diagnostics;
using System.Globalization;
using EffServe.Contracts.Inference;
using EffServe.Gateway.Forwarding;
using EffServe.Gateway.Relay;
using EffServe.Gateway.Tests.Support;
using EffServe.Testing;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.DependencyInjection;

namespace EffServe.Gateway.Tests;

/// <summary>
/// The frame relay: which calls go straight to a replica and which to the gateway's pipeline, when
/// it is on, and a client whose HPACK uses Huffman strings and the dynamic table (curl's nghttp2).
/// </summary>
[Collection(nameof(OnSharedReplicas))]
public sealed class RelayTests(SharedReplicas shared)
{
    private static Metadata ModelHeader(string model) => new() { { ModelCallForwarder.ModelHeader, model } };

    private async Task<GatewayServer> StartGatewayAsync(Action<GatewaySettings>? configure = null)
    {
        var settings = new GatewaySettings().Model(Digits.Model, shared.First.Address, shared.Second.Address);
        configure?.Invoke(settings);
        var gateway = await GatewayServer.StartAsync(settings.ToDictionary());
        await gateway.WaitUntilServingAsync(Digits.Model);
        return gateway;
    }

    [Fact]
    public async Task ModelCalls_GoStraightToReplica_ServerCallsToPipeline()
    {
        await using var gateway = await StartGatewayAsync();
        var relay = gateway.Services.GetRequiredService<FrameRelay>();
        Assert.True(relay.Enabled, relay.Reason);
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(gateway.Channel);
        var relayedBefore = relay.RelayedCalls;
        var pipelineBefore = relay.PipelineCalls;

        for (var i = 0; i < 5; i++)
        {
            var reply = await client.ModelInferAsync(Digits.Request(i), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);
            Assert.Equal($"sample-{i}", reply.Id);
            Assert.Equal(Digits.Classes, Digits.LogitCount(reply));
        }

        await client.ModelInferAsync(Digits.Request(5), ModelHeader(Digits.Model), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);
        var metadata = await client.ModelMetadataAsync(new ModelMetadataRequest { Name = Digits.Model }, deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);
        Assert.Equal(Digits.Model, metadata.Name);
        Assert.Equal(7, relay.RelayedCalls - relayedBefore);
        Assert.Equal(pipelineBefore, relay.PipelineCalls);

        // Server-level calls, an unknown model and a malformed message are the pipeline's.
        Assert.True((await client.ServerLiveAsync(new ServerLiveRequest(), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct)).Live);
        await Rpc.FailsAsync(StatusCode.NotFound, () => client.ModelInferAsync(Digits.Request(0, model: "nope"), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct).ResponseAsync, "'nope'", Digits.Model);
        var malformed = await RawGrpc.PostAsync(gateway.Address, RawGrpc.Inference + "ModelInfer", RawGrpc.Frame([0x0A, 0x05, 0x64]));
        Assert.Equal("3", malformed.Find("grpc-status"));

        Assert.Equal(7, relay.RelayedCalls - relayedBefore);
        Assert.Equal(3, relay.PipelineCalls - pipelineBefore);
    }

    [Fact]
    public async Task LargeMessage_TakesPipeline_AndIsAnswered()
    {
        // Above the relay's message limit (min(MaxRequestBytes, 64 KiB)) the pipeline streams the call.
        await using var gateway = await StartGatewayAsync(s => s.Set("MaxRequestBytes", "1024"));
        var relay = gateway.Services.GetRequiredService<FrameRelay>();
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(gateway.Channel);
        var pipelineBefore = relay.PipelineCalls;

        await Rpc.FailsAsync(StatusCode.ResourceExhausted, () => client.ModelInferAsync(Digits.Request(0, batch: 8), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct).ResponseAsync, "1024");
        var reply = await client.ModelInferAsync(Digits.Request(1, batch: 2), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);

        Assert.Equal(2 * Digits.Classes, Digits.LogitCount(reply));
        Assert.Equal(1, relay.PipelineCalls - pipelineBefore);
    }

    [Fact]
    public async Task LargeResponseAndLargeRequest_CrossTheRelayWhole()
    {
        // 3 MiB back: more than the relay's 1 MiB window to the replica and the client's own window,
        // so credit must flow both ways. 2 MiB in (above the relay's message limit): the pipeline's
        // path, relayed frame by frame into Kestrel's pipe.
        await using var fake = await FakeBackend.StartAsync("big", FakeAnswer.LargeMetadata);
        await using var gateway = await GatewayServer.StartAsync(new GatewaySettings().Model("big", fake.Address).ToDictionary());
        await gateway.WaitUntilServingAsync("big");
        var relay = gateway.Services.GetRequiredService<FrameRelay>();
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(gateway.Channel);
        var relayedBefore = relay.RelayedCalls;

        var small = await client.ModelMetadataAsync(new ModelMetadataRequest { Name = "big" }, deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);
        var large = await client.ModelMetadataAsync(new ModelMetadataRequest { Name = "big", Version = new string('v', 2 * 1024 * 1024) }, deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);

        Assert.Equal(FakeBackend.LargePlatformLength, small.Platform.Length);
        Assert.All(small.Platform, c => Assert.Equal('p', c));
        Assert.Equal(FakeBackend.LargePlatformLength, large.Platform.Length);
        Assert.Equal(1, relay.RelayedCalls - relayedBefore);
        var received = ModelMetadataRequest.Parser.ParseFrom(fake.Calls.Last().Body.AsSpan(5).ToArray());
        Assert.Equal(2 * 1024 * 1024, received.Version.Length);
    }

    [Fact]
    public async Task ManyCallsOnOneConnection_MoreBytesThanEveryWindow_NothingStalls()
    {
        // Connection-level credit returns only as bytes move on: a byte never credited back would
        // shrink the window for good. 12+ MB each way on one connection (the windows are 8 MiB)
        // would stall on such a leak; the deadlines would fail the calls.
        await using var fake = await FakeBackend.StartAsync("big", FakeAnswer.LargeMetadata);
        var settings = new GatewaySettings().Model(Digits.Model, shared.First.Address, shared.Second.Address).Model("big", fake.Address);
        await using var gateway = await GatewayServer.StartAsync(settings.ToDictionary());
        await gateway.WaitUntilServingAsync(Digits.Model);
        await gateway.WaitUntilServingAsync("big");
        var relay = gateway.Services.GetRequiredService<FrameRelay>();
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(gateway.Channel);
        var relayedBefore = relay.RelayedCalls;
        const int Calls = 1600;
        var request = Digits.Request(0, batch: 32); // about 8 KB: 1,600 of them are about 13 MB in
        var next = -1;

        async Task CallerAsync()
        {
            while (Interlocked.Increment(ref next) < Calls)
            {
                var reply = await client.ModelInferAsync(request, deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);
                Assert.Equal(32 * Digits.Classes, Digits.LogitCount(reply));
            }
        }

        await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => CallerAsync()));
        for (var i = 0; i < 5; i++)
        {
            // 3 MiB back each: 15 MiB out of one replica connection and into the client's.
            var big = await client.ModelMetadataAsync(new ModelMetadataRequest { Name = "big" }, deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);
            Assert.Equal(FakeBackend.LargePlatformLength, big.Platform.Length);
        }

        Assert.Equal(Calls + 5, relay.RelayedCalls - relayedBefore);
    }

    [Fact]
    public async Task ClientThatReadsNothing_NeverStallsTheReplicaConnectionOthersShare()
    {
        // Nine 3 MiB responses held for a client whose window is 0 are more than any connection
        // window; the replica connection must keep moving for everyone else.
        await using var fake = await FakeBackend.StartAsync("big", FakeAnswer.LargeMetadata);
        await using var gateway = await GatewayServer.StartAsync(new GatewaySettings().Model("big", fake.Address).ToDictionary());
        await gateway.WaitUntilServingAsync("big");
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(gateway.Channel);
        await using var sluggard = await RawH2.ConnectAsync(gateway.Address, initialWindow: 0);
        var body = RawGrpc.Frame(new ModelMetadataRequest { Name = "big" });
        for (var id = 1; id <= 17; id += 2)
        {
            await sluggard.SendAsync(id, "ModelMetadata", body);
        }

        await Eventually.UntilAsync(() => fake.Calls.Count >= 9, "the nine calls reach the replica");
        for (var i = 0; i < 3; i++)
        {
            var reply = await client.ModelMetadataAsync(new ModelMetadataRequest { Name = "big" }, deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);
            Assert.Equal(FakeBackend.LargePlatformLength, reply.Platform.Length);
        }
    }

    [Fact]
    public async Task GatewayStopping_CallsInFlightFinish_ClientMovesToNewConnection()
    {
        await using var fake = await FakeBackend.StartAsync("slow", FakeAnswer.SlowMetadata);
        await using var gateway = await GatewayServer.StartAsync(new GatewaySettings().Model("slow", fake.Address).ToDictionary());
        await gateway.WaitUntilServingAsync("slow");
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(gateway.Channel);
        var inFlight = Enumerable.Range(0, 5)
            .Select(_ => client.ModelMetadataAsync(new ModelMetadataRequest { Name = "slow" }, deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct).ResponseAsync)
            .ToList();
        await Eventually.UntilAsync(() => fake.Calls.Count == 5, "the five calls reach the replica");

        // Stopping: every relayed connection gets GOAWAY and closes once its streams end.
        gateway.Services.GetRequiredService<Microsoft.Extensions.Hosting.IHostApplicationLifetime>().StopApplication();
        var replies = await Task.WhenAll(inFlight);
        var after = await client.ModelMetadataAsync(new ModelMetadataRequest { Name = "slow" }, deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);

        Assert.All(replies, r => Assert.Equal(FakeBackend.FakePlatform, r.Platform));
        Assert.Equal(FakeBackend.FakePlatform, after.Platform);
    }

    [Fact]
    public async Task ModelWithTenantAllowList_OpenDoor_AnonymousCallerRefusedByPipeline()
    {
        // With the door open every caller is "anonymous"; a model only some tenants may call is the pipeline's door's to refuse.
        await using var gateway = await StartGatewayAsync(s => s.AllowedTenants(Digits.Model, "tenant-a"));
        var relay = gateway.Services.GetRequiredService<FrameRelay>();
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(gateway.Channel);
        Assert.True(relay.Enabled, relay.Reason);

        await Rpc.FailsAsync(StatusCode.PermissionDenied, () => client.ModelInferAsync(Digits.Request(0), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct).ResponseAsync);

        Assert.Equal(0, relay.RelayedCalls);
    }

    [Fact]
    public async Task MalformedHeaders_NeverReachAReplica_ClientKeepsItsConnection()
    {
        // An upper-case field name is malformed HTTP/2. Relayed, it could make the replica's Kestrel
        // fail the connection every client shares; the relay sends it to this client's pipeline,
        // where Kestrel refuses it. The client's connection stays and other clients never notice.
        await using var gateway = await StartGatewayAsync();
        var relay = gateway.Services.GetRequiredService<FrameRelay>();
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(gateway.Channel);
        await client.ModelInferAsync(Digits.Request(0), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);
        var pipelinesBefore = relay.PipelinesStarted;
        var relayedBefore = relay.RelayedCalls;

        await using var raw = await RawH2.ConnectAsync(gateway.Address);
        var body = RawGrpc.Frame(new ModelMetadataRequest { Name = Digits.Model });
        var evil = await raw.CallAsync(1, "ModelMetadata", body, ("X-Evil", "1"));
        var fine = await raw.CallAsync(3, "ModelMetadata", body);

        // Headers beyond Kestrel's 32 KiB limit (sent on in CONTINUATION frames) fail the whole
        // pipeline connection; the next call on the client's connection gets a fresh pipeline, and
        // the client's connection outlives the old pipeline's timers (Kestrel's write-rate check
        // fires about 5 s after a connection ends).
        var huge = await raw.CallAsync(5, "ModelMetadata", body, ("x-huge", new string('h', 40_000)));
        var again = await raw.CallAsync(7, "ModelMetadata", body);

        // More headers Kestrel fails a connection for: a malformed content-length, a value that is not UTF-8.
        var length = await raw.CallAsync(9, "ModelMetadata", body, ("content-length", "abc"));
        var latin = await raw.CallAsync(11, "ModelMetadata", body, ("x-name", "\u00ff\u00fe"));
        await Task.Delay(TimeSpan.FromSeconds(7), Rpc.Ct);
        var later = await raw.CallAsync(13, "ModelMetadata", body);
        var other = await client.ModelInferAsync(Digits.Request(1), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);

        Assert.NotEqual("0", evil);
        Assert.Equal("0", fine);
        Assert.NotEqual("0", huge);
        Assert.Equal("0", again);
        Assert.NotEqual("0", length);
        Assert.NotEqual("0", latin);
        Assert.Equal("0", later);
        Assert.Equal(Digits.Classes, Digits.LogitCount(other));
        Assert.Equal(relayedBefore + 4, relay.RelayedCalls); // the three fine calls and the other client's
        Assert.True(relay.PipelinesStarted >= pipelinesBefore + 2, $"pipelines started: {relay.PipelinesStarted - pipelinesBefore}");
        Assert.DoesNotContain(gateway.Logs.Entries, e => e.Message.Contains("failed", StringComparison.Ordinal) && e.Message.Contains("replica", StringComparison.Ordinal));
    }

    [Fact]
    public async Task SlowFirstMessage_HandedToPipeline_StillAnswered()
    {
        await using var gateway = await StartGatewayAsync();
        var relay = gateway.Services.GetRequiredService<FrameRelay>();
        await using var raw = await RawH2.ConnectAsync(gateway.Address);
        var pipelineBefore = relay.PipelineCalls;
        var relayedBefore = relay.RelayedCalls;

        var status = await raw.CallAsync(1, "ModelMetadata", RawGrpc.Frame(new ModelMetadataRequest { Name = Digits.Model }), FrameRelay.FirstMessageTimeout + TimeSpan.FromSeconds(1.5));

        Assert.Equal("0", status);
        Assert.Equal(relayedBefore, relay.RelayedCalls);
        Assert.Equal(pipelineBefore + 1, relay.PipelineCalls);
    }

    [Fact]
    public async Task Relay_Off_WhenConfiguredOff()
    {
        await using var gateway = await StartGatewayAsync(s => s.Set("FrameRelay", "false"));
        var relay = gateway.Services.GetRequiredService<FrameRelay>();
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(gateway.Channel);

        var reply = await client.ModelInferAsync(Digits.Request(1), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);

        Assert.Equal(Digits.Classes, Digits.LogitCount(reply));
        Assert.False(relay.Enabled);
        Assert.Contains("FrameRelay is false", relay.Reason, StringComparison.Ordinal);
        Assert.Equal(0, relay.RelayedCalls + relay.PipelineCalls);
    }

    [Fact]
    public async Task ClosedDoor_KnownKeyRelayedAsItsTenant_EverythingElseAnsweredByPipeline()
    {
        await using var fake = await FakeBackend.StartAsync("guarded", FakeAnswer.Metadata);
        var settings = new GatewaySettings().Model("guarded", fake.Address)
            .Set("Door:ApiKeys:key-a", "tenant-a").Set("Door:ApiKeys:key-b", "tenant-b")
            .Set("Door:RequestsPerSecond", "0.001").Set("Door:Burst", "2")
            .AllowedTenants("guarded", "tenant-a");
        await using var gateway = await GatewayServer.StartAsync(settings.ToDictionary());
        await gateway.WaitUntilServingAsync("guarded");
        var relay = gateway.Services.GetRequiredService<FrameRelay>();
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(gateway.Channel);
        Metadata Key(string key) => new() { { "effserve-api-key", key }, { Core.Jobs.TenantHeader.Name, "forged" } };
        var request = new ModelMetadataRequest { Name = "guarded" };

        for (var i = 0; i < 2; i++)
        {
            Assert.Equal(FakeBackend.FakePlatform, (await client.ModelMetadataAsync(request, Key("key-a"), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct)).Platform);
        }

        await Rpc.FailsAsync(StatusCode.ResourceExhausted, () => client.ModelMetadataAsync(request, Key("key-a"), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct).ResponseAsync, "tenant-a");
        await Rpc.FailsAsync(StatusCode.Unauthenticated, () => client.ModelMetadataAsync(request, Key("key-x"), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct).ResponseAsync, "not recognised");
        await Rpc.FailsAsync(StatusCode.Unauthenticated, () => client.ModelMetadataAsync(request, deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct).ResponseAsync);
        await Rpc.FailsAsync(StatusCode.PermissionDenied, () => client.ModelMetadataAsync(request, Key("key-b"), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct).ResponseAsync, "tenant-b", "guarded");

        // Only the two admitted calls went straight on, each as its tenant, without the key.
        Assert.True(relay.Enabled, relay.Reason);
        Assert.Equal(2, relay.RelayedCalls);
        Assert.Equal(2, fake.Calls.Count);
        Assert.All(fake.Calls, c =>
        {
            Assert.Equal("tenant-a", c.Headers.GetValueOrDefault(Core.Jobs.TenantHeader.Name));
            Assert.False(c.Headers.ContainsKey("effserve-api-key"));
        });
    }

    [Fact]
    public async Task Curl_HuffmanCodedIndexedHeaders_Relayed()
    {
        var curl = Curl.Find();
        Assert.SkipWhen(curl is null, "curl with HTTP/2 (nghttp2) is not installed here; it is the non-.NET client whose HPACK uses Huffman strings and the dynamic table.");
        await using var gateway = await StartGatewayAsync();
        var relay = gateway.Services.GetRequiredService<FrameRelay>();
        var relayedBefore = relay.RelayedCalls;
        var folder = Directory.CreateTempSubdirectory("effserve-relay-");
        try
        {
            var request = Path.Combine(folder.FullName, "request.bin");
            await File.WriteAllBytesAsync(request, RawGrpc.Frame(Digits.Request(7)), Rpc.Ct);
            var url = $"http://127.0.0.1:{gateway.Address.Port}{RawGrpc.Inference}ModelInfer";

            // nghttp2 sends its headers Huffman-coded, with incremental indexing into the relay's
            // dynamic table. (Lookups in that table are the HPACK tests' part: curl 7.88 fails a
            // second call on one h2c connection, sequential or parallel, with "Error in the HTTP2
            // framing layer" against Kestrel itself, as the control shows when it does.)
            var replica = $"http://127.0.0.1:{shared.First.Address.Port}{RawGrpc.Inference}ModelInfer";
            var outputs = Enumerable.Range(0, 3).Select(i => Path.Combine(folder.FullName, $"reply-{i}.bin")).ToArray();
            foreach (var (target, output) in outputs.Select((o, i) => (i == 0 ? replica : url, o)))
            {
                var (code, text) = await Curl.RunAsync(curl!,
                [
                    "--silent", "--show-error", "--http2-prior-knowledge",
                    "-H", "content-type: application/grpc", "-H", "te: trailers", "-H", "grpc-timeout: 10S",
                    "-H", "user-agent: relay-test/1.0 (nghttp2)", "--data-binary", "@" + request, "-o", output, target,
                ]);
                Assert.True(code == 0, $"curl to {target} exited {code}: {text} Gateway warnings: {string.Join("; ", gateway.Logs.Entries.Where(e => e.Level >= Microsoft.Extensions.Logging.LogLevel.Warning).Select(e => e.Message))}");
            }

            foreach (var output in outputs)
            {
                var bytes = await File.ReadAllBytesAsync(output, Rpc.Ct);
                Assert.True(bytes.Length > 5, $"{output}: {bytes.Length} bytes");
                var reply = ModelInferResponse.Parser.ParseFrom(bytes.AsSpan(5).ToArray());
                Assert.Equal("sample-7", reply.Id);
                Assert.Equal(Digits.Classes, Digits.LogitCount(reply));
            }

            Assert.Equal(2, relay.RelayedCalls - relayedBefore); // the first went straight to the replica, as the control
        }
        finally
        {
            folder.Delete(recursive: true);
        }
    }

    /// <summary>An HTTP/2 client written frame by frame, for requests no client library sends.</summary>
    private sealed class RawH2 : IAsyncDisposable
    {
        private readonly System.Net.Sockets.TcpClient _tcp;
        private readonly System.Net.Sockets.NetworkStream _stream;
        private readonly HpackDecoder _decoder = new();

        private RawH2(System.Net.Sockets.TcpClient tcp)
        {
            _tcp = tcp;
            _stream = tcp.GetStream();
        }

        /// <summary>Connects; with <paramref name="initialWindow"/> 0 the client takes no response bytes at all.</summary>
        public static async Task<RawH2> ConnectAsync(Uri address, int? initialWindow = null)
        {
            var tcp = new System.Net.Sockets.TcpClient();
            await tcp.ConnectAsync(address.Host, address.Port, Rpc.Ct);
            var raw = new RawH2(tcp);
            await raw._stream.WriteAsync(Http2.Preface.ToArray(), Rpc.Ct);
            var settings = new byte[initialWindow is null ? 0 : 6];
            if (initialWindow is { } window)
            {
                System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(settings, Http2.Setting.InitialWindowSize);
                System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(settings.AsSpan(2), window);
            }

            await raw.WriteFrameAsync(Http2.Type.Settings, 0, 0, settings);
            return raw;
        }

        /// <summary>Sends one unary call on <paramref name="streamId"/>; returns its grpc-status, or "RST n" when the stream was reset.</summary>
        public Task<string> CallAsync(int streamId, string method, byte[] body, params (string Name, string Value)[] extra) =>
            CallAsync(streamId, method, body, TimeSpan.Zero, extra);

        /// <summary>As above; with a <paramref name="pause"/>, the body goes in two halves that far apart.</summary>
        public async Task<string> CallAsync(int streamId, string method, byte[] body, TimeSpan pause, params (string Name, string Value)[] extra)
        {
            await SendAsync(streamId, method, body, pause, extra);
            var header = new byte[Http2.FrameHeaderLength];
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Rpc.Ct);
            timeout.CancelAfter(TimeSpan.FromSeconds(10));
            while (true)
            {
                await _stream.ReadExactlyAsync(header, timeout.Token);
                var length = (header[0] << 16) | (header[1] << 8) | header[2];
                var payload = new byte[length];
                await _stream.ReadExactlyAsync(payload, timeout.Token);
                var id = System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(5)) & int.MaxValue;
                var fields = new List<HeaderField>();
                if (header[3] == Http2.Type.Headers)
                {
                    _decoder.Decode(payload, fields); // decoded for every stream: the table is the connection's
                }

                if (id != streamId)
                {
                    continue;
                }

                if (header[3] == Http2.Type.RstStream)
                {
                    return $"RST {System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(payload)}";
                }

                if (fields.FirstOrDefault(f => f.Name == "grpc-status") is { Name: not null } status)
                {
                    return status.Value;
                }
            }
        }

        /// <summary>
        /// Sends one unary call and reads nothing back: the header block (in CONTINUATION frames past
        /// one frame's size), then the body, in two halves <paramref name="pause"/> apart when one is given.
        /// </summary>
        public async Task SendAsync(int streamId, string method, byte[] body, TimeSpan pause = default, params (string Name, string Value)[] extra)
        {
            var block = new System.Buffers.ArrayBufferWriter<byte>();
            foreach (var (name, value) in new[] { (":method", "POST"), (":scheme", "http"), (":path", RawGrpc.Inference + method), (":authority", "relay-test"), ("content-type", "application/grpc"), ("te", "trailers") }.Concat(extra))
            {
                HpackEncoder.Write(block, name, value);
            }

            var chunks = block.WrittenSpan.ToArray().Chunk(Http2.DefaultMaxFrameSize).ToList();
            for (var i = 0; i < chunks.Count; i++)
            {
                await WriteFrameAsync(i == 0 ? Http2.Type.Headers : Http2.Type.Continuation, i == chunks.Count - 1 ? Http2.Flags.EndHeaders : (byte)0, streamId, chunks[i]);
            }

            if (pause > TimeSpan.Zero)
            {
                await WriteFrameAsync(Http2.Type.Data, 0, streamId, body[..(body.Length / 2)]);
                await Task.Delay(pause, Rpc.Ct);
                body = body[(body.Length / 2)..];
            }

            await WriteFrameAsync(Http2.Type.Data, Http2.Flags.EndStream, streamId, body);
        }

        private async Task WriteFrameAsync(byte type, byte flags, int streamId, byte[] payload)
        {
            var frame = new byte[Http2.FrameHeaderLength + payload.Length];
            Http2.WriteFrameHeader(frame, payload.Length, type, flags, streamId);
            payload.CopyTo(frame, Http2.FrameHeaderLength);
            await _stream.WriteAsync(frame, Rpc.Ct);
        }

        public ValueTask DisposeAsync()
        {
            _tcp.Dispose();
            return ValueTask.CompletedTask;
        }
    }

    private static class Curl
    {
        public static string? Find()
        {
            var path = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
                .Select(d => Path.Combine(d, "curl")).FirstOrDefault(File.Exists);
            if (path is null)
            {
                return null;
            }

            using var process = Process.Start(new ProcessStartInfo(path, "--version") { RedirectStandardOutput = true })!;
            var version = process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            return version.Contains("nghttp2", StringComparison.Ordinal) ? path : null;
        }

        public static async Task<(int Code, string Output)> RunAsync(string curl, IEnumerable<string> arguments)
        {
            var info = new ProcessStartInfo(curl) { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var argument in arguments)
            {
                info.ArgumentList.Add(argument);
            }

            using var process = Process.Start(info)!;
            var output = process.StandardOutput.ReadToEndAsync(Rpc.Ct);
            var error = process.StandardError.ReadToEndAsync(Rpc.Ct);
            await process.WaitForExitAsync(Rpc.Ct);
            return (process.ExitCode, (await output) + (await error));
        }
    }
}
