using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net;
using EffServe.Contracts.Inference;
using EffServe.Testing;
using Google.Protobuf;
using Grpc.Health.V1;
using Grpc.HealthCheck;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace EffServe.Gateway.Tests.Support;

/// <summary>How a <see cref="FakeBackend"/> answers inference calls.</summary>
internal enum FakeAnswer
{
    /// <summary>ModelMetadata gets a real response naming the model with platform <c>fake</c>; other calls get UNIMPLEMENTED.</summary>
    Metadata,

    /// <summary>As <see cref="Metadata"/>, after holding each call half a second, so that many are in flight at once.</summary>
    SlowMetadata,

    /// <summary>Every call gets a trailers-only UNAVAILABLE, as a replica that is shutting down would answer.</summary>
    Unavailable,

    /// <summary>As <see cref="Metadata"/>, with a platform string of <see cref="FakeBackend.LargePlatformLength"/> characters (a response larger than any flow-control window).</summary>
    LargeMetadata,
}

/// <summary>One call a fake backend received: its method path, the headers the gateway sent, the body (what arrived, when the request ended early).</summary>
internal sealed record FakeCall(string Path, IReadOnlyDictionary<string, string> Headers, byte[] Body, bool Complete = true)
{
    public string? GrpcTimeout => Headers.GetValueOrDefault("grpc-timeout");

    public string? ModelHeader => Headers.GetValueOrDefault("effserve-model");
}

/// <summary>
/// A tiny backend on real Kestrel (h2c, free loopback port) that stands in for an inference
/// replica: grpc.health.v1 says it serves its model, and the inference methods answer as
/// <see cref="FakeAnswer"/> says, recording what reached them.
/// </summary>
internal sealed class FakeBackend : IAsyncDisposable
{
    public const string FakePlatform = "fake";

    public const int LargePlatformLength = 3 * 1024 * 1024;

    private readonly WebApplication _app;
    private readonly string _model;
    private readonly FakeAnswer _answer;
    private readonly ConcurrentQueue<FakeCall> _calls = new();
    private readonly CountedHealth _health;

    private FakeBackend(WebApplication app, string model, FakeAnswer answer, CountedHealth health)
    {
        _app = app;
        _health = health;
        _model = model;
        _answer = answer;
    }

    public Uri Address { get; private set; } = null!;

    public IReadOnlyCollection<FakeCall> Calls => _calls;

    /// <summary>How many grpc.health.v1 checks reached the backend (answered or not).</summary>
    public int HealthChecks => _health.Count;

    /// <summary>Starts a fake serving <paramref name="model"/> and, by grpc.health.v1, <paramref name="alsoServes"/>.</summary>
    public static Task<FakeBackend> StartAsync(string model, FakeAnswer answer, params string[] alsoServes) =>
        StartAsync(model, answer, healthDelay: null, alsoServes);

    /// <summary>
    /// Starts a backend for <paramref name="model"/> (and <paramref name="alsoServes"/>); with
    /// <paramref name="healthDelay"/>, every health check is held that long before it answers
    /// SERVING (a replica too busy to answer its probe in time), while inference calls answer as
    /// fast as <paramref name="answer"/> says.
    /// </summary>
    public static async Task<FakeBackend> StartAsync(string model, FakeAnswer answer, TimeSpan? healthDelay, params string[] alsoServes)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Testing", ContentRootPath = RepoPaths.Root, Args = [] });
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, o => o.Protocols = HttpProtocols.Http2));
        var health = new HealthServiceImpl();
        health.SetStatus("", HealthCheckResponse.Types.ServingStatus.Serving);
        foreach (var served in alsoServes.Prepend(model))
        {
            health.SetStatus(served, HealthCheckResponse.Types.ServingStatus.Serving);
        }

        var counted = new CountedHealth(health, healthDelay ?? TimeSpan.Zero);
        builder.Services.AddSingleton(counted);
        builder.Services.AddGrpc();
        var app = builder.Build();
        var fake = new FakeBackend(app, model, answer, counted);
        app.MapGrpcService<CountedHealth>();
        app.MapPost(RawGrpc.Inference + "{method}", fake.AnswerAsync);
        app.MapPost("/effserve.v1.JobService/{method}", fake.AnswerAsync);
        await app.StartAsync();
        fake.Address = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
        return fake;
    }

    private async Task AnswerAsync(HttpContext context)
    {
        using var body = new MemoryStream();
        var headers = context.Request.Headers.ToDictionary(h => h.Key.ToLowerInvariant(), h => h.Value.ToString(), StringComparer.Ordinal);
        try
        {
            await context.Request.Body.CopyToAsync(body, context.RequestAborted);
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or Microsoft.AspNetCore.Http.BadHttpRequestException)
        {
            // The request ended early (the gateway reset it): what arrived is kept, for tests that
            // check what a replica was sent.
            _calls.Enqueue(new FakeCall(context.Request.Path.Value ?? "", headers, body.ToArray(), Complete: false));
            return;
        }

        _calls.Enqueue(new FakeCall(context.Request.Path.Value ?? "", headers, body.ToArray()));

        var response = context.Response;
        response.ContentType = "application/grpc";
        if (_answer == FakeAnswer.Unavailable)
        {
            response.Headers["grpc-status"] = "14";
            response.Headers["grpc-message"] = "fake replica is unavailable";
            return;
        }

        if (!context.Request.Path.Value!.EndsWith("/ModelMetadata", StringComparison.Ordinal))
        {
            response.Headers["grpc-status"] = "12";
            response.Headers["grpc-message"] = "the fake backend answers ModelMetadata only";
            return;
        }

        if (_answer == FakeAnswer.SlowMetadata)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(500), context.RequestAborted);
        }

        var platform = _answer == FakeAnswer.LargeMetadata ? new string('p', LargePlatformLength) : FakePlatform;
        var message = new ModelMetadataResponse { Name = _model, Platform = platform }.ToByteArray();
        var frame = new byte[5 + message.Length];
        BinaryPrimitives.WriteUInt32BigEndian(frame.AsSpan(1), (uint)message.Length);
        message.CopyTo(frame.AsSpan(5));
        await response.Body.WriteAsync(frame, context.RequestAborted);
        response.AppendTrailer("grpc-status", "0");
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    /// <summary>grpc.health.v1 that counts each check and holds it <c>delay</c> before answering.</summary>
    private sealed class CountedHealth(HealthServiceImpl inner, TimeSpan delay) : Health.HealthBase
    {
        private int _count;

        public int Count => Volatile.Read(ref _count);

        public override async Task<HealthCheckResponse> Check(HealthCheckRequest request, Grpc.Core.ServerCallContext context)
        {
            Interlocked.Increment(ref _count);
            if (delay > TimeSpan.Zero)
            {
                await Task.Delay(delay, context.CancellationToken);
            }

            return await inner.Check(request, context);
        }
    }
}
