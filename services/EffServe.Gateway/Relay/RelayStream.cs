using System.Buffers;
using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using EffServe.Gateway.Door;
using EffServe.Gateway.Forwarding;
using EffServe.Gateway.Routing;
using Grpc.Core;

namespace EffServe.Gateway.Relay;

/// <summary>
/// One client stream through the relay. A unary model call waits for its first gRPC message, reads
/// the model from the header or the message, and goes to a replica with the message kept until the
/// response starts, so that an unreachable replica or an UNAVAILABLE answer is retried once on
/// another. Every other stream — and any call the relay cannot route itself (no model, an unknown
/// one, a malformed or large message, no healthy replica) — goes to the gateway's own pipeline,
/// which answers exactly as it always has. All state changes happen under the stream's lock; a
/// stream's lock may be taken before a connection's write lock, never after.
/// </summary>
internal sealed class RelayStream
{
    private readonly Lock _lock = new();
    private readonly FrameRelay _relay;
    private readonly ClientConnection _client;
    private readonly int _clientId;
    private readonly List<HeaderField> _headers;
    private readonly long _started = Stopwatch.GetTimestamp();
    private readonly RelayCall _call;
    private readonly string _method;
    private string _status = "";
    private bool _relayed;

    private State _state;
    private UpstreamConnection? _up;
    private int _upId;
    private Destination? _destination;
    private ReplicaSet? _replicas;
    private string _model = "";
    private string _tenant = GatewayDoor.Anonymous;
    private int _attempts;

    // Request: bytes not yet sent upstream, or (while retaining) every byte, for a replay.
    private ArrayBufferWriter<byte>? _body;
    private int _bodySent;
    private bool _retaining;
    private int _message; // a relayed unary call's one message (prefix included); 0 for the pipeline's streams
    private long _requestBytes;
    private bool _clientEnded;
    private bool _requestEndSent;
    private long _upWindowDelta; // the upstream stream's window less the peer's initial window
    private int _creditedTo; // body bytes already credited to the client (a replay credits nothing twice)
    private int _clientCredit;
    private long _clientOwed; // request bytes taken whose connection-level credit the client has not got back

    // Response: bytes the client's window did not take yet, then perhaps the trailers.
    private ArrayBufferWriter<byte>? _response;
    private int _responseSent;
    private bool _responseEndPending;
    private List<HeaderField>? _trailers;
    private bool _responseStarted;
    private long _clientWindowDelta; // the client stream's window less the client's initial window
    private int _upCredit;
    private long _responseStalledSince; // when response bytes began to wait on the client's window; 0 when none wait

    public RelayStream(FrameRelay relay, ClientConnection client, int clientId, List<HeaderField> headers)
    {
        _relay = relay;
        _client = client;
        _clientId = clientId;
        _headers = headers;
        _call = FrameRelay.Classify(headers);
        var path = Find(headers, ":path") ?? "";
        _method = FrameRelay.KnownMethod(path);
    }

    private enum State
    {
        WaitingForMessage,
        Connecting,
        Routed,
        Done,
    }

    private int BodyPending => (_body?.WrittenCount ?? 0) - _bodySent;

    // ---- from the client ----

    public void Start(bool endStream)
    {
        lock (_lock)
        {
            _clientEnded = endStream;
            if (_call == RelayCall.Pipeline || endStream)
            {
                ToPipeline();
            }
        }
    }

    /// <summary>Request bytes; false when the stream no longer takes any (the connection credits them at once).</summary>
    public bool OnClientData(ReadOnlySpan<byte> data, bool endStream)
    {
        lock (_lock)
        {
            if (_state == State.Done || _clientEnded)
            {
                return false;
            }

            _clientEnded = endStream;
            _clientOwed += data.Length;

            // A second message in a relayed unary call (routed, or about to be): the replica must not see any of it.
            if (_message > 0 && (_requestBytes += data.Length) > _message)
            {
                TooManyBytes();
                return true;
            }

            switch (_state)
            {
                case State.WaitingForMessage:
                    Append(data);
                    TryRoute();
                    break;
                case State.Connecting:
                    Append(data);
                    break;
                default:
                    if (_retaining || BodyPending > 0)
                    {
                        Append(data);
                        SendBody();
                    }
                    else
                    {
                        var sent = _up!.WriteData(_upId, ref _upWindowDelta, data, endStream);
                        GiveClientCredit(sent);
                        if (sent < data.Length)
                        {
                            Append(data[sent..]);
                        }
                        else
                        {
                            _requestEndSent = endStream;
                        }
                    }

                    break;
            }
        }

        return true;
    }

    /// <summary>More bytes than the one message of a relayed unary call: INVALID_ARGUMENT, as the pipeline answers.</summary>
    private void TooManyBytes()
    {
        DetachUpstream(reset: true);
        _requestEndSent = true;
        if (_responseStarted)
        {
            _client.WriteReset(_clientId, Http2.Error.Cancel);
            Finish(resetClient: false);
            return;
        }

        Answer(StatusCode.InvalidArgument, $"The request is not a well-formed gRPC message: the body holds more than the {_message} bytes its frame says; a unary call carries exactly one message.");
    }

    /// <summary>
    /// A first message slower than <see cref="FrameRelay.FirstMessageTimeout"/> goes to the pipeline,
    /// and its data-rate limit; a response the client takes nothing of for
    /// <see cref="FrameRelay.ResponseStallTimeout"/> ends the call.
    /// </summary>
    public void Tick(long now)
    {
        lock (_lock)
        {
            if (_state == State.WaitingForMessage && Stopwatch.GetElapsedTime(_started, now) > FrameRelay.FirstMessageTimeout)
            {
                ToPipeline();
            }
            else if (_state == State.Routed && _responseStalledSince != 0 && Stopwatch.GetElapsedTime(_responseStalledSince, now) > FrameRelay.ResponseStallTimeout)
            {
                // The client took none of the response for this long (Kestrel's MinResponseDataRate
                // plays this part on the pipeline): the call ends, and the bytes it held are freed.
                DetachUpstream(reset: true);
                _requestEndSent = true;
                _client.WriteReset(_clientId, Http2.Error.Cancel);
                Finish(resetClient: false);
            }
        }
    }

    /// <summary>gRPC clients send no trailers; if one does, the request simply ends there.</summary>
    public void OnClientTrailers(List<HeaderField> fields, bool endStream)
    {
        if (endStream)
        {
            _ = OnClientData([], endStream: true);
        }
    }

    public void OnClientReset()
    {
        lock (_lock)
        {
            if (_state == State.Done)
            {
                return;
            }

            if (_up is not null && _state == State.Routed)
            {
                _up.WriteReset(_upId, Http2.Error.Cancel);
            }

            _clientEnded = true;
            Finish(resetClient: false);
        }
    }

    public void OnClientWindow(int increment)
    {
        lock (_lock)
        {
            _clientWindowDelta += increment;
            if (_state != State.Done)
            {
                DrainResponse();
            }
        }
    }

    // ---- from the upstream ----

    public void OnUpstreamHeaders(UpstreamConnection from, List<HeaderField> fields, bool endStream)
    {
        lock (_lock)
        {
            if (_state == State.Done || from != _up)
            {
                return;
            }

            if (endStream)
            {
                _status = Find(fields, "grpc-status") ?? "";
            }

            if (_responseStarted)
            {
                // Trailers: after whatever response bytes still wait for the client's window.
                if (_response is { WrittenCount: > 0 })
                {
                    _trailers = fields;
                }
                else
                {
                    _client.WriteHeaders(_clientId, fields, endStream: true);
                    Finish(resetClient: !_clientEnded);
                }

                return;
            }

            if (endStream && _retaining && _attempts < 2 && Find(fields, "grpc-status") == "14")
            {
                GatewayLog.RetryingUnavailable(_relay.Logger, _model, _destination!.Prefix);
                Retry(markFailed: false, reason: "UNAVAILABLE");
                return;
            }

            _responseStarted = true;
            StopRetaining();
            _client.WriteHeaders(_clientId, fields, endStream);
            if (endStream)
            {
                Finish(resetClient: !_clientEnded);
            }
        }
    }

    /// <summary>
    /// Response bytes; false when the stream no longer takes any from <paramref name="from"/>. An
    /// upstream connection is credited as it reads (always false to it, see UpstreamConnection.OnData):
    /// what a slow client leaves here is bounded by the stream's window and by <see cref="Tick"/>.
    /// </summary>
    public bool OnUpstreamData(UpstreamConnection from, ReadOnlySpan<byte> data, bool endStream)
    {
        lock (_lock)
        {
            if (_state == State.Done || from != _up)
            {
                return false;
            }

            if (_response is { WrittenCount: > 0 })
            {
                _response.Write(data);
                _responseEndPending = endStream;
                return true;
            }

            var sent = _client.WriteData(_clientId, ref _clientWindowDelta, data, endStream);
            GiveUpstreamCredit(sent);
            if (sent < data.Length)
            {
                _response ??= new ArrayBufferWriter<byte>(data.Length - sent);
                _response.Write(data[sent..]);
                _responseEndPending = endStream;
                _responseStalledSince = Stopwatch.GetTimestamp();
            }
            else if (endStream)
            {
                Finish(resetClient: !_clientEnded);
            }
        }

        return true;
    }

    public void OnUpstreamReset(UpstreamConnection from, int code)
    {
        lock (_lock)
        {
            if (_state == State.Done || from != _up)
            {
                return;
            }

            if (!_responseStarted && _retaining && _attempts < 2)
            {
                Retry(markFailed: false, reason: $"RST_STREAM {code}"); // a refusal of this request, not a failing replica
                return;
            }

            DetachUpstream(reset: false); // the upstream stream is gone: nothing to reset there
            if (!_responseStarted && _destination is not null)
            {
                Answer(StatusCode.Unavailable, $"Replica {_destination.Prefix} of model '{_model}' failed (RST_STREAM {code}); retry later.");
                return;
            }

            _client.WriteReset(_clientId, code == Http2.Error.NoError ? Http2.Error.Cancel : code);
            Finish(resetClient: false);
        }
    }

    /// <summary>The upstream connection failed or refused the stream; a kept request goes elsewhere.</summary>
    public void OnUpstreamLost(UpstreamConnection from, bool transportFailure, string detail)
    {
        lock (_lock)
        {
            if (_state == State.Done || from != _up)
            {
                return;
            }

            DetachUpstream(reset: false);
            if (_destination is not null && transportFailure)
            {
                _destination.MarkFailed(_relay.PassiveHealthPenalty);
                GatewayLog.ReplicaFailed(_relay.Logger, _model, _destination.Prefix, "connection lost", detail);
            }

            if (!_responseStarted && _retaining && _destination is not null)
            {
                Retry(markFailed: false, reason: detail);
                return;
            }

            _client.WriteReset(_clientId, _responseStarted ? Http2.Error.InternalError : Http2.Error.RefusedStream);
            Finish(resetClient: false);
        }
    }

    public void OnUpstreamWindow(UpstreamConnection from, int increment)
    {
        lock (_lock)
        {
            if (from != _up || _state != State.Routed)
            {
                return;
            }

            _upWindowDelta += increment;
            if (BodyPending > 0 || (_clientEnded && !_requestEndSent))
            {
                SendBody();
            }
        }
    }

    // ---- routing ----

    /// <summary>Routes once the first message is whole (or cannot be read by the relay).</summary>
    private void TryRoute()
    {
        var body = _body is null ? default : _body.WrittenSpan;
        if (body.Length < GrpcFrames.PrefixLength)
        {
            if (_clientEnded)
            {
                ToPipeline();
            }

            return;
        }

        var frame = GrpcFrames.PrefixLength + (long)BinaryPrimitives.ReadUInt32BigEndian(body[1..]);
        if (frame > _relay.MaxRelayedMessage)
        {
            ToPipeline(); // large messages take the pipeline's streaming path and its size limit
            return;
        }

        if (body.Length < frame)
        {
            if (_clientEnded)
            {
                ToPipeline();
            }

            return;
        }

        if (body.Length > frame || (Find(_headers, "content-length") is { } declared && declared != frame.ToString(CultureInfo.InvariantCulture)))
        {
            ToPipeline(); // a unary call carries one message, and says its length right; the pipeline says what is wrong
            return;
        }

        var model = Find(_headers, ModelCallForwarder.ModelHeader) ?? "";
        if (model.Length == 0)
        {
            var peeked = GrpcFrames.TryReadModelName(new ReadOnlySequence<byte>(_body!.WrittenMemory[..(int)frame]), Find(_headers, "grpc-encoding"), out model, out _);
            if (peeked != PeekError.None)
            {
                ToPipeline();
                return;
            }

            if (_call == RelayCall.ByJobId)
            {
                model = Core.Jobs.JobIds.TryParse(model, out var owner, out _) ? owner : "";
            }
        }

        if (model.Length == 0 || !_relay.Router.TryGet(model, out var replicas) || !_relay.Models.TryGetValue(model, out var route)
            || Deadline() is { } left && left <= TimeSpan.Zero)
        {
            ToPipeline();
            return;
        }

        var destination = replicas.Pick();

        // The door last, so that only a call about to go to a replica spends a request of its tenant's budget.
        if (destination is null || !_relay.Door.TryAdmitForRelay(Find(_headers, GatewayDoor.ApiKeyHeader), route, out _tenant))
        {
            ToPipeline();
            return;
        }

        _model = model;
        _replicas = replicas;
        _retaining = true;
        _relayed = true;
        _message = (int)frame;
        _requestBytes = body.Length;
        RouteTo(destination);
    }

    private void ToPipeline()
    {
        _retaining = false;
        var pipeline = _client.Pipeline();
        if (pipeline is null)
        {
            _client.WriteReset(_clientId, Http2.Error.RefusedStream);
            Finish(resetClient: false);
            return;
        }

        Attach(pipeline, _headers);
    }

    private void RouteTo(Destination destination)
    {
        _destination = destination;
        _attempts++;
        destination.Enter();
        var pool = _relay.PoolFor(destination);
        if (pool.TryGetReady(out var connection))
        {
            AttachToReplica(connection);
            return;
        }

        _state = State.Connecting;
        _ = ConnectAsync(pool, destination);
    }

    private async Task ConnectAsync(UpstreamPool pool, Destination destination)
    {
        UpstreamConnection connection;
        try
        {
            connection = await pool.ConnectAsync().ConfigureAwait(false);
        }
#pragma warning disable CA1031 // any failure to connect is the replica's: the call goes elsewhere or is answered
        catch (Exception e)
#pragma warning restore CA1031
        {
            lock (_lock)
            {
                if (_state == State.Done || _destination != destination)
                {
                    return;
                }

                destination.MarkFailed(_relay.PassiveHealthPenalty);
                GatewayLog.ReplicaFailed(_relay.Logger, _model, destination.Prefix, "connect", e.Message);
                Retry(markFailed: false, reason: e.Message);
            }

            return;
        }

        lock (_lock)
        {
            if (_state == State.Connecting && _destination == destination)
            {
                AttachToReplica(connection);
            }
        }
    }

    private void AttachToReplica(UpstreamConnection connection)
    {
        var left = Deadline();
        if (left is { } l && l <= TimeSpan.Zero)
        {
            Answer(StatusCode.DeadlineExceeded, "The call's deadline passed in the gateway.");
            return;
        }

        // The replica learns the caller's tenant from the gateway only: a client's own header never
        // passes, and with a door that names tenants the credentials stay here and the tenant goes
        // on. The replica gets what is left of the caller's deadline, not the whole of it.
        var headers = new List<HeaderField>(_headers.Count + 1);
        foreach (var field in _headers)
        {
            if (field.Name is Core.Jobs.TenantHeader.Name or "grpc-timeout" || (_relay.RequiresIdentity && field.Name is GatewayDoor.ApiKeyHeader or "authorization"))
            {
                continue;
            }

            headers.Add(field);
        }

        if (_relay.RequiresIdentity)
        {
            headers.Add(new HeaderField(Core.Jobs.TenantHeader.Name, Core.Jobs.TenantHeader.Encode(_tenant)));
        }

        if (left is { } remaining)
        {
            headers.Add(new HeaderField("grpc-timeout", GrpcTimeout.Format(remaining)));
        }

        Attach(connection, headers);
    }

    private void Attach(UpstreamConnection connection, List<HeaderField> headers)
    {
        _up = connection;
        _state = State.Routed;
        _bodySent = 0;
        _requestEndSent = false;
        _upWindowDelta = 0;
        var endNow = _clientEnded && BodyPending == 0;
        _upId = connection.OpenStream(this, headers, endNow);
        if (_upId < 0)
        {
            // The connection ended, or filled up, between the choice and the send.
            _up = null;
            if (_destination is { } destination && _retaining)
            {
                var pool = _relay.PoolFor(destination);
                if (pool.TryGetReady(out var other) && other != connection)
                {
                    AttachToReplica(other);
                }
                else
                {
                    _state = State.Connecting;
                    _ = ConnectAsync(pool, destination);
                }
            }
            else
            {
                _client.WriteReset(_clientId, Http2.Error.RefusedStream);
                Finish(resetClient: false);
            }

            return;
        }

        if (endNow)
        {
            _requestEndSent = true;
        }
        else if (BodyPending > 0)
        {
            SendBody();
        }
    }

    private void Retry(bool markFailed, string reason)
    {
        var failed = _destination!;
        if (markFailed)
        {
            failed.MarkFailed(_relay.PassiveHealthPenalty);
        }

        failed.Leave();
        _destination = null;
        DetachUpstream(reset: !_requestEndSent);
        if (reason != "UNAVAILABLE")
        {
            GatewayLog.RetryingElsewhere(_relay.Logger, _model, failed.Prefix, reason);
        }

        var next = _attempts < 2 ? _replicas!.Pick(exclude: failed) : null;
        if (next is null)
        {
            Answer(StatusCode.Unavailable, _attempts < 2
                ? $"No other healthy replica of model '{_model}' could take the call after {failed.Prefix} failed; retry later."
                : $"Replica {failed.Prefix} of model '{_model}' failed ({reason}); retry later.");
            return;
        }

        RouteTo(next);
    }

    /// <summary>Leaves the upstream stream (resetting it when it may still be open there).</summary>
    private void DetachUpstream(bool reset)
    {
        if (_up is null)
        {
            return;
        }

        if (reset)
        {
            _up.WriteReset(_upId, Http2.Error.Cancel);
        }

        _up.Forget(_upId);
        _up = null;
    }

    // ---- sending ----

    private void SendBody()
    {
        var pending = _body is null ? default : _body.WrittenSpan[_bodySent..];
        var sent = _up!.WriteData(_upId, ref _upWindowDelta, pending, _clientEnded);
        _bodySent += sent;
        if (_bodySent > _creditedTo)
        {
            GiveClientCredit(_bodySent - _creditedTo);
            _creditedTo = _bodySent;
        }
        if (sent == pending.Length)
        {
            _requestEndSent = _clientEnded;
            if (!_retaining && _body is not null)
            {
                _body.ResetWrittenCount();
                _bodySent = 0;
                _creditedTo = 0;
            }
        }
        else if (!_retaining && Compact(_body!, ref _bodySent))
        {
            _creditedTo = 0;
        }
    }

    private void DrainResponse()
    {
        if (_response is { WrittenCount: > 0 } response)
        {
            var pending = response.WrittenSpan[_responseSent..];
            var sent = _client.WriteData(_clientId, ref _clientWindowDelta, pending, _responseEndPending);
            _responseSent += sent;
            GiveUpstreamCredit(sent);
            if (sent > 0)
            {
                _responseStalledSince = Stopwatch.GetTimestamp(); // progress: the clock starts again
            }

            if (sent < pending.Length)
            {
                _ = Compact(response, ref _responseSent);
                return;
            }

            response.ResetWrittenCount();
            _responseSent = 0;
            _responseStalledSince = 0;
            if (_responseEndPending)
            {
                Finish(resetClient: !_clientEnded);
                return;
            }
        }

        if (_trailers is not null)
        {
            _client.WriteHeaders(_clientId, _trailers, endStream: true);
            Finish(resetClient: !_clientEnded);
        }
    }

    /// <summary>Answers the call from the gateway: a trailers-only response with a gRPC status.</summary>
    private void Answer(StatusCode code, string message)
    {
        _status = ((int)code).ToString(CultureInfo.InvariantCulture);
        _client.WriteHeaders(_clientId,
        [
            new(":status", "200"),
            new("content-type", "application/grpc"),
            new("grpc-status", ((int)code).ToString(CultureInfo.InvariantCulture)),
            new("grpc-message", GrpcResponses.PercentEncode(message)),
        ], endStream: true);
        Finish(resetClient: !_clientEnded);
    }

    private void Finish(bool resetClient)
    {
        if (_state == State.Done)
        {
            return;
        }

        _state = State.Done;
        _relay.Record(_method, _model, _status.Length > 0 ? _status : "reset", _relayed, _started);
        if (resetClient)
        {
            _client.WriteReset(_clientId, Http2.Error.NoError); // the response is whole; the rest of the request is not needed
        }

        if (_up is not null)
        {
            if (!_requestEndSent)
            {
                _up.WriteReset(_upId, Http2.Error.Cancel);
            }

            _up.Forget(_upId);
        }

        // Whatever the stream took and did not pass on is the connections' again.
        _client.ReturnConnectionCredit(_clientOwed);
        _clientOwed = 0;

        _destination?.Leave();
        _destination = null;
        _body = null;
        _response = null;
        _client.Forget(_clientId);
    }

    // ---- helpers ----

    /// <summary>Drops the bytes already sent once they are half the buffer, so a long stream's backlog stays bounded.</summary>
    private static bool Compact(ArrayBufferWriter<byte> buffer, ref int sent)
    {
        if (sent < buffer.WrittenCount / 2 || sent < 16 * 1024)
        {
            return false;
        }

        var rest = buffer.WrittenSpan[sent..].ToArray();
        buffer.ResetWrittenCount();
        buffer.Write(rest);
        sent = 0;
        return true;
    }

    private void Append(ReadOnlySpan<byte> data)
    {
        if (data.Length == 0)
        {
            return;
        }

        _body ??= new ArrayBufferWriter<byte>(Math.Max(256, data.Length));
        if (BodyPending + data.Length > 2 * RelayConnection.StreamReceiveWindow)
        {
            // Twice the window the relay granted: the client ignores flow control.
            throw new Http2ProtocolException(Http2.Error.FlowControlError, $"stream {_clientId} sent more than its window allows");
        }

        _body.Write(data);
        if (_retaining && _body.WrittenCount > _relay.MaxRelayedMessage * 2)
        {
            StopRetaining(); // more than a unary call carries: no replay
        }
    }

    private void StopRetaining()
    {
        _retaining = false;
        if (_body is not null && BodyPending == 0)
        {
            _body.ResetWrittenCount();
            _bodySent = 0;
            _creditedTo = 0;
        }
    }

    private void GiveClientCredit(int bytes)
    {
        var owed = Math.Min(bytes, _clientOwed);
        _clientOwed -= owed;
        _client.ReturnConnectionCredit(owed);
        _clientCredit += bytes;
        if (!_clientEnded && _clientCredit >= RelayConnection.StreamReceiveWindow / 4)
        {
            _client.WriteWindowUpdate(_clientId, _clientCredit);
            _clientCredit = 0;
        }
    }

    private void GiveUpstreamCredit(int bytes)
    {
        _upCredit += bytes;
        if (_up is not null && _upCredit >= RelayConnection.StreamReceiveWindow / 4)
        {
            _up.WriteWindowUpdate(_upId, _upCredit);
            _upCredit = 0;
        }
    }

    private TimeSpan? Deadline() =>
        GrpcTimeout.TryParse(Find(_headers, "grpc-timeout"), out var timeout) ? timeout - Stopwatch.GetElapsedTime(_started) : null;

    private static string? Find(List<HeaderField> fields, string name)
    {
        foreach (var field in fields)
        {
            if (field.Name == name)
            {
                return field.Value;
            }
        }

        return null;
    }
}

/// <summary>What the relay does with a call, from its path.</summary>
internal enum RelayCall
{
    /// <summary>The gateway's own pipeline serves it.</summary>
    Pipeline,

    /// <summary>A unary call whose field 1 names the model.</summary>
    ByModel,

    /// <summary>A unary job call whose field 1 is a job id that starts with the model.</summary>
    ByJobId,
}
