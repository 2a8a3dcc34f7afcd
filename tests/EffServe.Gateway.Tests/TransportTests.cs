using System.Diagnostics;
using System.Globalization;
using EffServe.Contracts.Inference;
using EffServe.Gateway.Forwarding;
using EffServe.Gateway.Routing;
using EffServe.Gateway.Tests.Support;
using EffServe.Testing;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.DependencyInjection;

namespace EffServe.Gateway.Tests;

/// <summary>
/// The gateway's HTTP/2 transport (Kestrel and YARP): large messages both ways, many calls on one
/// connection, a client that reads nothing, malformed header blocks, shutdown with calls in flight,
/// and a client whose HPACK uses Huffman strings and the dynamic table (curl's nghttp2).
/// </summary>
[Collection(nameof(OnSharedReplicas))]
public sealed class TransportTests(SharedReplicas shared)
{
    private static Metadata ModelHeader(string model) => new() { { CallRouter.ModelHeader, model } };

    private async Task<GatewayServer> StartGatewayAsync(Action<GatewaySettings>? configure = null)
    {
        var settings = new GatewaySettings().Model(Digits.Model, shared.First.Address, shared.Second.Address);
        configure?.Invoke(settings);
        var gateway = await GatewayServer.StartAsync(settings.ToDictionary());
        await gateway.WaitUntilServingAsync(Digits.Model);
        return gateway;
    }

    [Fact]
    public async Task LargeResponseAndLargeRequest_CrossTheGatewayWhole()
    {
        // 3 MiB back: more than the client's own window, so credit must flow both ways; 2 MiB in.
        await using var fake = await FakeBackend.StartAsync("big", FakeAnswer.LargeMetadata);
        await using var gateway = await GatewayServer.StartAsync(new GatewaySettings().Model("big", fake.Address).ToDictionary());
        await gateway.WaitUntilServingAsync("big");
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(gateway.Channel);

        var small = await client.ModelMetadataAsync(new ModelMetadataRequest { Name = "big" }, deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);
        var large = await client.ModelMetadataAsync(new ModelMetadataRequest { Name = "big", Version = new string('v', 2 * 1024 * 1024) }, deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);

        Assert.Equal(FakeBackend.LargePlatformLength, small.Platform.Length);
        Assert.All(small.Platform, c => Assert.Equal('p', c));
        Assert.Equal(FakeBackend.LargePlatformLength, large.Platform.Length);
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
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(gateway.Channel);
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

        // Stopping: every connection gets GOAWAY and closes once its streams end.
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
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(gateway.Channel);

        await Rpc.FailsAsync(StatusCode.PermissionDenied, () => client.ModelInferAsync(Digits.Request(0), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct).ResponseAsync);

    }

    [Fact]
    public async Task MalformedHeaders_NeverReachAReplica_OtherClientsUnharmed()
    {
        // Malformed HTTP/2 header blocks (an upper-case field name, a block past Kestrel's 32 KiB
        // limit sent on in CONTINUATION frames, a malformed content-length, a value that is not
        // UTF-8). Passed on, any of them could make a replica's Kestrel fail the connection every
        // client shares; the gateway's Kestrel refuses each on the sender's own connection.
        await using var gateway = await StartGatewayAsync();
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(gateway.Channel);
        await client.ModelInferAsync(Digits.Request(0), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);
        var body = RawGrpc.Frame(new ModelMetadataRequest { Name = Digits.Model });
        (string Name, string Value)[] malformed = [("X-Evil", "1"), ("x-huge", new string('h', 40_000)), ("content-length", "abc"), ("x-name", "\u00ff\u00fe")];

        foreach (var header in malformed)
        {
            await using var raw = await RawH2.ConnectAsync(gateway.Address);
            var status = await raw.CallAsync(1, "ModelMetadata", body, header);
            Assert.NotEqual("0", status);
        }

        await using (var fresh = await RawH2.ConnectAsync(gateway.Address))
        {
            Assert.Equal("0", await fresh.CallAsync(1, "ModelMetadata", body));
        }

        var other = await client.ModelInferAsync(Digits.Request(1), deadline: Rpc.Deadline(), cancellationToken: Rpc.Ct);
        Assert.Equal(Digits.Classes, Digits.LogitCount(other));
        Assert.DoesNotContain(gateway.Logs.Entries, e => e.Message.Contains("failed", StringComparison.Ordinal) && e.Message.Contains("replica", StringComparison.Ordinal));
    }

    [Fact]
    public async Task ClosedDoor_KnownKeyForwardedAsItsTenant_EverythingElseRefused()
    {
        await using var fake = await FakeBackend.StartAsync("guarded", FakeAnswer.Metadata);
        var settings = new GatewaySettings().Model("guarded", fake.Address)
            .Set("Door:ApiKeys:key-a", "tenant-a").Set("Door:ApiKeys:key-b", "tenant-b")
            .Set("Door:RequestsPerSecond", "0.001").Set("Door:Burst", "2")
            .AllowedTenants("guarded", "tenant-a");
        await using var gateway = await GatewayServer.StartAsync(settings.ToDictionary());
        await gateway.WaitUntilServingAsync("guarded");
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
        Assert.Equal(2, fake.Calls.Count);
        Assert.All(fake.Calls, c =>
        {
            Assert.Equal("tenant-a", c.Headers.GetValueOrDefault(Core.Jobs.TenantHeader.Name));
            Assert.False(c.Headers.ContainsKey("effserve-api-key"));
        });
    }

    [Fact]
    public async Task Curl_HuffmanCodedIndexedHeaders_Forwarded()
    {
        var curl = Curl.Find();
        Assert.SkipWhen(curl is null, "curl with HTTP/2 (nghttp2) is not installed here; it is the non-.NET client whose HPACK uses Huffman strings and the dynamic table.");
        await using var gateway = await StartGatewayAsync();
        var folder = Directory.CreateTempSubdirectory("effserve-curl-");
        try
        {
            var request = Path.Combine(folder.FullName, "request.bin");
            await File.WriteAllBytesAsync(request, RawGrpc.Frame(Digits.Request(7)), Rpc.Ct);
            var url = $"http://127.0.0.1:{gateway.Address.Port}{RawGrpc.Inference}ModelInfer";

            // nghttp2 sends its headers Huffman-coded, with incremental indexing into the gateway's
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
                    "-H", "user-agent: transport-test/1.0 (nghttp2)", "--data-binary", "@" + request, "-o", output, target,
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

        }
        finally
        {
            folder.Delete(recursive: true);
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
