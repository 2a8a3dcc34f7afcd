using System.Buffers;
using System.Diagnostics;
using System.IO.Pipelines;
using System.Net;
using EffServe.Gateway.Door;
using EffServe.Gateway.Routing;
using Grpc.Core;
using Microsoft.Extensions.Options;
using Yarp.ReverseProxy.Forwarder;

namespace EffServe.Gateway.Forwarding;

/// <summary>
/// Forwards a model-level call to a replica of its model. The door admits the caller first; then
/// the first message is read, within the message limit, the request-body timeout and the
/// connection's and process's request budgets; the router decides from it; and the call goes to a
/// replica through YARP. A unary call is sent from the bytes the gateway already holds (no copy), so
/// a call whose replica is unreachable or answers UNAVAILABLE before any response byte is sent again
/// to another replica. A stream's later messages pass through a check that each names the same model.
/// </summary>
public sealed class ModelCallForwarder
{
    private static readonly ForwarderRequestConfig s_requestConfig = new()
    {
        Version = HttpVersion.Version20,
        VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        ActivityTimeout = TimeSpan.FromMinutes(10),
    };

    private readonly IHttpForwarder _forwarder;
    private readonly CallRouter _router;
    private readonly BackendClient _backend;
    private readonly GatewayDoor _door;
    private readonly GatewayOptions _options;
    private readonly RequestBudget _processBudget;
    private readonly ILogger<ModelCallForwarder> _logger;

    public ModelCallForwarder(IHttpForwarder forwarder, CallRouter router, BackendClient backend, GatewayDoor door, IOptions<GatewayOptions> options, ILogger<ModelCallForwarder> logger)
    {
        _forwarder = forwarder;
        _router = router;
        _backend = backend;
        _door = door;
        _options = options.Value;
        _processBudget = new RequestBudget(_options.MaxBufferedRequestBytes);
        _logger = logger;
    }

    /// <summary>Request bytes the gateway holds now, over every connection.</summary>
    public long BufferedRequestBytes => _processBudget.Held;

    /// <summary>Serves one call of a forwarded method (the endpoint the gateway maps for each).</summary>
    public async Task ForwardAsync(HttpContext context, GatewayMethod method)
    {
        var started = Stopwatch.GetTimestamp();
        if (!await _door.AdmitAsync(context).ConfigureAwait(false))
        {
            return;
        }

        var deadline = Deadline(context, started);
        if (deadline is { } d && d <= TimeSpan.Zero)
        {
            await GrpcResponses.WriteErrorAsync(context, StatusCode.DeadlineExceeded, "The call's deadline passed in the gateway before it could be sent on; retry with a longer deadline.").ConfigureAwait(false);
            return;
        }

        var streaming = method.Route == MethodRoute.StreamByModel;
        var connectionBudget = ConnectionBudgets.For(context, _options.MaxBufferedRequestBytesPerConnection);
        var held = new HeldBytes(_processBudget, connectionBudget);
        var reader = context.Request.BodyReader;
        ReadOnlySequence<byte>? unread = null;
        try
        {
            var first = await ReadFirstMessageAsync(context, reader, wholeBody: !streaming, held).ConfigureAwait(false);
            if (first is not { } frame)
            {
                return; // answered
            }

            unread = frame;
            var decision = _router.Decide(method, context.Request.Headers[CallRouter.ModelHeader], frame, context.Request.Headers["grpc-encoding"], GatewayDoor.TenantOf(context));
            if (!decision.Routed)
            {
                await GrpcResponses.WriteErrorAsync(context, decision.Status, decision.Message).ConfigureAwait(false);
                return;
            }

            GatewayMetrics.SetModel(context, decision.Model);
            ForwardedHeaders.Apply(context, _options.Door.RequiresIdentity);

            if (streaming)
            {
                // The first message goes first, then the rest of the stream through the model check;
                // the first message's bytes are copied out so that the pipe can move on.
                var copy = frame.ToArray();
                reader.AdvanceTo(frame.End);
                unread = null;
                held.Release();
                var rest = new ModelCheckingStream(context.Request.Body, decision.Model, context.Request.Headers["grpc-encoding"], _options.MaxRequestBytes);
                await ForwardWithRetryAsync(context, decision, () => new PrefixedStream(copy, rest), canRetry: false, started, deadline).ConfigureAwait(false);
            }
            else
            {
                await ForwardWithRetryAsync(context, decision, () => new SequenceStream(frame), canRetry: true, started, deadline).ConfigureAwait(false);
            }
        }
        finally
        {
            if (unread is { } consumed)
            {
                reader.AdvanceTo(consumed.End);
            }

            held.Release();
        }
    }

    private async Task ForwardWithRetryAsync(HttpContext context, RouteDecision decision, Func<Stream> body, bool canRetry, long started, TimeSpan? deadline)
    {
        var replicas = decision.Replicas!;
        var model = decision.Model;
        Destination? failed = null;
        var sameAgain = false;
        for (var attempt = 0; attempt < 2; attempt++)
        {
            // A retry goes to another replica; to the same one only when there is no other and it
            // is not known to be unreachable (its connection was lost under the call).
            var destination = replicas.Pick(exclude: failed) ?? (sameAgain ? failed : null);
            if (destination is null)
            {
                break;
            }

            // A replica takes at most MaxCallsPerReplica calls at once: what it cannot start soon
            // would only wait in its queue past its deadline, holding memory here. The call goes
            // to another replica with room, or is refused at once for the client to retry.
            if (!destination.TryEnter(_options.MaxCallsPerReplica))
            {
                var other = replicas.Pick(exclude: destination);
                if (other is null || !other.TryEnter(_options.MaxCallsPerReplica))
                {
                    await GrpcResponses.WriteErrorAsync(
                        context,
                        StatusCode.ResourceExhausted,
                        $"Every replica of model '{model}' in rotation already has {_options.MaxCallsPerReplica} calls in flight (EffServe:Gateway:MaxCallsPerReplica); retry in about 100 ms.",
                        TimeSpan.FromMilliseconds(100)).ConfigureAwait(false);
                    return;
                }

                destination = other;
            }

            context.Request.Body = body();
            var retryable = canRetry && attempt == 0;

            // A replica's own UNAVAILABLE answer is retried only where another replica can take the
            // call; otherwise it reaches the client unchanged, status and message as the replica chose.
            var transformer = new GrpcTransformer(started, deadline, retryOnUnavailable: retryable && replicas.Pick(exclude: destination) is not null);
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
                destination.RecordSuccess(); // a replica that answers is busy at worst, whatever its probe says
                return;
            }

            if (transformer.RetryRequested)
            {
                context.Response.Clear();
                GatewayLog.RetryingUnavailable(_logger, model, destination.Prefix);
                failed = destination;
                continue;
            }

            // Only a replica that cannot be reached leaves rotation: nothing one client's call can
            // cause (a reset, a cancelled call, an oversize answer) marks it failed.
            var exception = context.Features.Get<IForwarderErrorFeature>()?.Exception;
            var unreachable = ReplicaFailures.IsReplicaUnreachable(exception) && !context.RequestAborted.IsCancellationRequested;
            if (unreachable)
            {
                destination.MarkFailed(_options.PassiveHealthPenalty);
                GatewayLog.ReplicaFailed(_logger, model, destination.Prefix, error.ToString(), exception?.Message ?? "");
            }

            // A stream message the check refused: the caller is told why, and the replica is not blamed.
            if (error is ForwarderError.RequestBodyClient && RefusalIn(exception) is { } refused && !context.Response.HasStarted && !context.RequestAborted.IsCancellationRequested)
            {
                context.Features.Set<IForwarderErrorFeature>(null);
                await GrpcResponses.WriteErrorAsync(context, StatusCode.InvalidArgument, refused.Message).ConfigureAwait(false);
                return;
            }

            // A unary body is sent from memory, so a failure while sending it is the replica's, even
            // when YARP files it under the client (it cannot tell which side of the copy broke).
            var replicaSide = unreachable || error is ForwarderError.Request or ForwarderError.RequestBodyDestination or ForwarderError.ResponseBodyDestination
                || (error is ForwarderError.RequestBodyClient && canRetry);
            if (retryable && replicaSide && !context.Response.HasStarted && !context.RequestAborted.IsCancellationRequested)
            {
                // YARP set a 502 for the failed attempt; nothing was sent, so start the response afresh.
                context.Features.Set<IForwarderErrorFeature>(null);
                context.Response.Clear();
                failed = destination;
                sameAgain = !unreachable;
                continue;
            }

            if (!context.Response.HasStarted && !context.RequestAborted.IsCancellationRequested)
            {
                var clientSide = !replicaSide && error is ForwarderError.RequestBodyClient or ForwarderError.ResponseBodyClient;
                await GrpcResponses.WriteErrorAsync(
                    context,
                    StatusCode.Unavailable,
                    clientSide
                        ? $"The call to model '{model}' broke on the caller's side of the gateway ({error}); retry."
                        : $"Replica {destination.Prefix} of model '{model}' could not complete the call ({error}); retry later.").ConfigureAwait(false);
            }

            return;
        }

        await GrpcResponses.WriteErrorAsync(
            context,
            StatusCode.Unavailable,
            failed is null
                ? $"No replica of model '{model}' is available ({replicas.Destinations.Count} configured, none in rotation); retry in a few seconds."
                : $"No other replica of model '{model}' could take the call after {failed.Prefix} failed; retry in a few seconds.",
            TimeSpan.FromSeconds(1)).ConfigureAwait(false);
    }

    /// <summary>
    /// Reads the whole body (unary) or the first frame (streaming), within the message limit, the
    /// request-body timeout and the budgets; the bytes stay in the request pipe, unconsumed, until
    /// the caller advances past them. Null when the call was answered instead.
    /// </summary>
    private async Task<ReadOnlySequence<byte>?> ReadFirstMessageAsync(HttpContext context, PipeReader reader, bool wholeBody, HeldBytes held)
    {
        var limit = (long)_options.MaxRequestBytes + GrpcFrames.PrefixLength;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
        timeout.CancelAfter(_options.RequestBodyTimeout);
        while (true)
        {
            ReadResult result;
            try
            {
                result = await reader.ReadAsync(timeout.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!context.RequestAborted.IsCancellationRequested)
            {
                await GrpcResponses.WriteErrorAsync(context, StatusCode.DeadlineExceeded, $"The request message did not arrive within the gateway's limit of {_options.RequestBodyTimeout.TotalSeconds:G} s; send it faster or in smaller requests.").ConfigureAwait(false);
                return null;
            }
            catch (Exception e) when (e is OperationCanceledException or IOException or BadHttpRequestException)
            {
                context.Abort();
                return null;
            }

            var buffer = result.Buffer;
            var message = GrpcFrames.MessageLength(buffer);
            var frame = message < 0 ? -1 : message + GrpcFrames.PrefixLength;
            if (frame > limit || buffer.Length > limit)
            {
                reader.AdvanceTo(buffer.Start, buffer.End);
                await GrpcResponses.WriteErrorAsync(context, StatusCode.ResourceExhausted, $"The request message is larger than the gateway's limit of {_options.MaxRequestBytes} bytes.").ConfigureAwait(false);
                return null;
            }

            var wanted = wholeBody ? buffer.Length : Math.Min(buffer.Length, frame < 0 ? buffer.Length : frame);
            var refusal = held.TryHold(wanted);
            if (refusal is not null)
            {
                reader.AdvanceTo(buffer.Start, buffer.End);
                await GrpcResponses.WriteErrorAsync(context, StatusCode.ResourceExhausted, refusal, TimeSpan.FromMilliseconds(100)).ConfigureAwait(false);
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

                return buffer.Slice(0, frame);
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

    private static StreamMessageRefusedException? RefusalIn(Exception? exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            if (e is StreamMessageRefusedException refused)
            {
                return refused;
            }
        }

        return null;
    }

    private static TimeSpan? Deadline(HttpContext context, long started) =>
        GrpcTimeout.TryParse(context.Request.Headers["grpc-timeout"], out var timeout) ? timeout - Stopwatch.GetElapsedTime(started) : null;

    /// <summary>The bytes one call holds in both budgets, grown as they arrive and given back once.</summary>
    private sealed class HeldBytes(RequestBudget process, RequestBudget connection)
    {
        private long _held;

        /// <summary>Holds up to <paramref name="total"/> bytes in all; null, or why not.</summary>
        public string? TryHold(long total)
        {
            var more = total - _held;
            if (more <= 0)
            {
                return null;
            }

            if (!connection.TryTake(more))
            {
                return $"This connection already has {connection.Held} request bytes in the gateway (limit {connection.Limit}); wait for its calls to finish, or spread them over more connections.";
            }

            if (!process.TryTake(more))
            {
                connection.Give(more);
                return $"The gateway holds its limit of {process.Limit} request bytes waiting to be routed; retry shortly.";
            }

            _held = total;
            return null;
        }

        public void Release()
        {
            if (_held > 0)
            {
                process.Give(_held);
                connection.Give(_held);
                _held = 0;
            }
        }
    }
}

/// <summary>The header edits every forwarded call gets.</summary>
internal static class ForwardedHeaders
{
    /// <summary>
    /// The replica learns the caller's tenant from the gateway only (it binds jobs to it): a
    /// client's own effserve-tenant header never passes, and with the door closed the credentials
    /// stay in the gateway.
    /// </summary>
    public static void Apply(HttpContext context, bool requiresIdentity)
    {
        var headers = context.Request.Headers;
        headers.Remove(Core.Jobs.TenantHeader.Name);
        headers.Remove(CallRouter.ModelHeader);
        if (requiresIdentity)
        {
            headers.Remove(GatewayDoor.ApiKeyHeader);
            headers.Authorization = default;
            headers[Core.Jobs.TenantHeader.Name] = Core.Jobs.TenantHeader.Encode(GatewayDoor.TenantOf(context));
        }
    }
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
