using System.Buffers;
using System.Diagnostics;
using System.IO.Pipelines;
using System.Net;
using EffServe.Core.Jobs;
using EffServe.Gateway.Door;
using EffServe.Gateway.Routing;
using Grpc.Core;
using Microsoft.Extensions.Options;
using Yarp.ReverseProxy.Forwarder;

namespace EffServe.Gateway.Forwarding;

/// <summary>
/// Forwards a model-level call (ModelInfer, ModelMetadata, ModelReady, ModelStatistics,
/// ModelStreamInfer) to a replica of its model: the model comes from the `effserve-model` header or
/// from field 1 of the first message; a unary call whose replica is unreachable or answers
/// UNAVAILABLE before any response byte is retried once on another replica.
/// </summary>
public sealed class ModelCallForwarder
{
    public const string ModelHeader = "effserve-model";

    private static readonly ForwarderRequestConfig s_requestConfig = new()
    {
        Version = HttpVersion.Version20,
        VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        ActivityTimeout = TimeSpan.FromMinutes(10),
    };

    private readonly IHttpForwarder _forwarder;
    private readonly ModelRouter _router;
    private readonly BackendClient _backend;
    private readonly GatewayDoor _door;
    private readonly GatewayOptions _options;
    private readonly ILogger<ModelCallForwarder> _logger;

    public ModelCallForwarder(IHttpForwarder forwarder, ModelRouter router, BackendClient backend, GatewayDoor door, IOptions<GatewayOptions> options, ILogger<ModelCallForwarder> logger)
    {
        _forwarder = forwarder;
        _router = router;
        _backend = backend;
        _door = door;
        _options = options.Value;
        _logger = logger;
    }

    public Task ForwardUnaryAsync(HttpContext context) => ForwardAsync(context, streaming: false);

    public Task ForwardStreamingAsync(HttpContext context) => ForwardAsync(context, streaming: true);

    /// <summary>A job call whose field 1 is a job id ("&lt;model&gt;.&lt;random&gt;"): routed to a replica of the id's model.</summary>
    public Task ForwardJobAsync(HttpContext context) => ForwardAsync(context, streaming: false, byJobId: true);

    private async Task ForwardAsync(HttpContext context, bool streaming, bool byJobId = false)
    {
        var started = Stopwatch.GetTimestamp();
        if (!await _door.AdmitAsync(context).ConfigureAwait(false))
        {
            return;
        }

        var deadline = Deadline(context, started);
        if (deadline is { } d && d <= TimeSpan.Zero)
        {
            await GrpcResponses.WriteErrorAsync(context, StatusCode.DeadlineExceeded, "The call's deadline passed in the gateway.").ConfigureAwait(false);
            return;
        }

        // The header names the model: forward at once, keeping a copy of the body as it streams
        // by so that a unary call can be replayed. Without it the model is read from the first
        // message: unary calls are read whole (one message), a stream gives up its first message
        // and the rest flows through untouched.
        var model = context.Request.Headers[ModelHeader].ToString();
        byte[]? body = null;
        if (model.Length == 0)
        {
            body = await ReadFirstMessageAsync(context, wholeBody: !streaming).ConfigureAwait(false);
            if (body is null)
            {
                return; // answered
            }

            var encoding = context.Request.Headers["grpc-encoding"].ToString();
            switch (GrpcFrames.TryReadModelName(new ReadOnlySequence<byte>(body), encoding, out model, out var detail))
            {
                case PeekError.UnsupportedCompression:
                    await GrpcResponses.WriteErrorAsync(context, StatusCode.Unimplemented, $"The gateway cannot read messages compressed with '{encoding}' to find the model; send them uncompressed, gzip or deflate, or name the model in the '{ModelHeader}' header.").ConfigureAwait(false);
                    return;
                case PeekError.Malformed:
                    await GrpcResponses.WriteErrorAsync(context, StatusCode.InvalidArgument, $"The request is not a well-formed gRPC message: {detail}.").ConfigureAwait(false);
                    return;
            }

            if (byJobId)
            {
                if (!Core.Jobs.JobIds.TryParse(model, out var owner, out var problem))
                {
                    await GrpcResponses.WriteErrorAsync(context, StatusCode.InvalidArgument, problem).ConfigureAwait(false);
                    return;
                }

                model = owner;
            }
        }

        if (model.Length == 0)
        {
            await GrpcResponses.WriteErrorAsync(context, StatusCode.InvalidArgument, $"The request names no model; models served here: {string.Join(", ", _router.Names)}.").ConfigureAwait(false);
            return;
        }

        if (!_router.TryGet(model, out var replicas) || !_options.Models.TryGetValue(model, out var route))
        {
            await GrpcResponses.WriteErrorAsync(context, StatusCode.NotFound, $"Model '{model}' is not served here; models served here: {string.Join(", ", _router.Names)}.").ConfigureAwait(false);
            return;
        }

        GatewayMetrics.SetModel(context, model);
        if (!await GatewayDoor.AllowsAsync(context, model, route).ConfigureAwait(false))
        {
            return;
        }

        // The replica learns the caller's tenant from the gateway only (it binds jobs to it): a
        // client's own effserve-tenant header never passes.
        context.Request.Headers.Remove(TenantHeader.Name);
        if (_options.Door.RequiresIdentity)
        {
            context.Request.Headers.Remove(GatewayDoor.ApiKeyHeader);
            context.Request.Headers.Authorization = default;
            context.Request.Headers[TenantHeader.Name] = TenantHeader.Encode(GatewayDoor.TenantOf(context));
        }

        var rest = context.Request.Body;
        var recording = body is null && !streaming ? new RecordingStream(rest, _options.MaxRequestBytes + GrpcFrames.PrefixLength) : null;
        try
        {
            await ForwardWithRetryAsync(context, model, replicas, body, recording, rest, streaming, started, deadline).ConfigureAwait(false);
        }
        finally
        {
            recording?.ReturnBuffer();
        }
    }

    private async Task ForwardWithRetryAsync(HttpContext context, string model, ReplicaSet replicas, byte[]? body, RecordingStream? recording, Stream rest, bool streaming, long started, TimeSpan? deadline)
    {
        Destination? failed = null;
        for (var attempt = 0; attempt < 2; attempt++)
        {
            var destination = replicas.Pick(exclude: failed);
            if (destination is null)
            {
                break;
            }

            context.Request.Body = (body, recording) switch
            {
                (not null, _) when streaming => new PrefixedStream(body, rest),
                (not null, _) => new MemoryStream(body, writable: false),
                (null, not null) when attempt == 0 => recording,
                (null, not null) => new PrefixedStream(recording.Recorded, rest),
                _ => rest,
            };
            var canRetry = !streaming && attempt == 0 && (recording?.CanReplay ?? true);
            var transformer = new GrpcTransformer(started, deadline, retryOnUnavailable: canRetry);
            destination.Enter();
            ForwarderError error;
            try
            {
                error = await _forwarder.SendAsync(context, destination.Prefix, _backend.Invoker, s_requestConfig, transformer, context.RequestAborted).ConfigureAwait(false);
            }
            finally
            {
                destination.Leave();
            }

            if (error == ForwarderError.None && !transformer.RetryRequested)
            {
                return;
            }

            if (transformer.RetryRequested)
            {
                context.Response.Clear();
                GatewayLog.RetryingUnavailable(_logger, model, destination.Prefix);
                failed = destination;
                continue;
            }

            // A unary body is replayed from memory, so a failure while sending it is the replica's,
            // even when YARP files it under the client (it cannot tell which side of the copy broke).
            var transport = error is ForwarderError.Request or ForwarderError.RequestBodyDestination or ForwarderError.ResponseBodyDestination
                || (error == ForwarderError.RequestBodyClient && !streaming && !context.RequestAborted.IsCancellationRequested);
            if (transport)
            {
                destination.MarkFailed(_options.PassiveHealthPenalty);
                GatewayLog.ReplicaFailed(_logger, model, destination.Prefix, error.ToString(), context.Features.Get<IForwarderErrorFeature>()?.Exception?.Message ?? "");
            }

            if (canRetry && transport && !context.Response.HasStarted && (recording?.CanReplay ?? true))
            {
                // YARP set a 502 for the failed attempt; nothing was sent, so start the response afresh.
                context.Features.Set<IForwarderErrorFeature>(null);
                context.Response.Clear();
                failed = destination;
                continue;
            }

            if (!context.Response.HasStarted && !context.RequestAborted.IsCancellationRequested)
            {
                await GrpcResponses.WriteErrorAsync(context, StatusCode.Unavailable, $"Replica {destination.Prefix} of model '{model}' failed ({error}); retry later.").ConfigureAwait(false);
            }

            return;
        }

        await GrpcResponses.WriteErrorAsync(
            context,
            StatusCode.Unavailable,
            failed is null
                ? $"No healthy replica of model '{model}' is available ({replicas.Destinations.Count} configured); retry later."
                : $"No other healthy replica of model '{model}' could take the call after {failed.Prefix} failed; retry later.").ConfigureAwait(false);
    }

    /// <summary>
    /// Reads the whole body (unary) or the first frame (streaming) into memory, within the size
    /// limit; null when the call was answered with an error instead.
    /// </summary>
    private async Task<byte[]?> ReadFirstMessageAsync(HttpContext context, bool wholeBody)
    {
        var reader = context.Request.BodyReader;
        var limit = _options.MaxRequestBytes + GrpcFrames.PrefixLength;
        while (true)
        {
            ReadResult result;
            try
            {
                result = await reader.ReadAsync(context.RequestAborted).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or IOException or BadHttpRequestException)
            {
                context.Abort();
                return null;
            }

            var buffer = result.Buffer;
            var frame = GrpcFrames.FrameLength(buffer);
            if (frame > limit || buffer.Length > limit)
            {
                reader.AdvanceTo(buffer.Start, buffer.End);
                await GrpcResponses.WriteErrorAsync(context, StatusCode.ResourceExhausted, $"The request message is larger than the gateway's limit of {_options.MaxRequestBytes} bytes.").ConfigureAwait(false);
                return null;
            }

            var complete = wholeBody ? result.IsCompleted : frame >= 0 && buffer.Length >= frame;
            if (complete)
            {
                if (frame < 0 || (wholeBody && buffer.Length != frame))
                {
                    reader.AdvanceTo(buffer.End);
                    var what = frame < 0 ? "ended before a complete gRPC frame" : $"holds {buffer.Length} bytes but its frame says {frame}; a unary call carries exactly one message";
                    await GrpcResponses.WriteErrorAsync(context, StatusCode.InvalidArgument, $"The request is not a well-formed gRPC message: the body {what}.").ConfigureAwait(false);
                    return null;
                }

                var bytes = buffer.Slice(0, frame).ToArray();
                reader.AdvanceTo(buffer.GetPosition(frame));
                return bytes;
            }

            if (result.IsCompleted)
            {
                reader.AdvanceTo(buffer.End);
                await GrpcResponses.WriteErrorAsync(context, StatusCode.InvalidArgument, "The request is not a well-formed gRPC message: the body ended inside the first frame.").ConfigureAwait(false);
                return null;
            }

            reader.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    private static TimeSpan? Deadline(HttpContext context, long started) =>
        GrpcTimeout.TryParse(context.Request.Headers["grpc-timeout"], out var timeout) ? timeout - Stopwatch.GetElapsedTime(started) : null;
}

/// <summary>Request and response adjustments for one forwarded call.</summary>
internal sealed class GrpcTransformer(long started, TimeSpan? deadline, bool retryOnUnavailable) : HttpTransformer
{
    public bool RetryRequested { get; private set; }

    public override async ValueTask TransformRequestAsync(HttpContext httpContext, HttpRequestMessage proxyRequest, string destinationPrefix, CancellationToken cancellationToken)
    {
        await base.TransformRequestAsync(httpContext, proxyRequest, destinationPrefix, cancellationToken).ConfigureAwait(false);
        if (deadline is { } total)
        {
            // The replica gets what is left of the caller's deadline, not the whole of it.
            var left = total - Stopwatch.GetElapsedTime(started);
            proxyRequest.Headers.Remove("grpc-timeout");
            proxyRequest.Headers.TryAddWithoutValidation("grpc-timeout", GrpcTimeout.Format(left > TimeSpan.Zero ? left : TimeSpan.FromTicks(10)));
        }
    }

    public override ValueTask<bool> TransformResponseAsync(HttpContext httpContext, HttpResponseMessage? proxyResponse, CancellationToken cancellationToken)
    {
        // A trailers-only UNAVAILABLE answer carries its status in the headers: nothing has reached
        // the client yet, so the call can go to another replica.
        if (retryOnUnavailable && proxyResponse is not null
            && proxyResponse.Headers.TryGetValues("grpc-status", out var status) && status.FirstOrDefault() == "14")
        {
            RetryRequested = true;
            return ValueTask.FromResult(false);
        }

        return base.TransformResponseAsync(httpContext, proxyResponse, cancellationToken);
    }
}
