using Grpc.Core;
using Grpc.Net.Client;

namespace EffServe.Cli.Commands;

/// <summary>One command's connection to an endpoint: the channel, and options for each call.</summary>
public sealed class GrpcSession : IDisposable
{
    private readonly GrpcChannel _channel;
    private readonly TimeProvider _time;
    private readonly TimeSpan? _timeout;
    private readonly CancellationToken _cancellationToken;

    public GrpcSession(Uri endpoint, GrpcChannel channel, TimeProvider time, TimeSpan? timeout, CancellationToken cancellationToken)
    {
        Endpoint = endpoint;
        _channel = channel;
        Invoker = channel.CreateCallInvoker();
        _time = time;
        _timeout = timeout;
        _cancellationToken = cancellationToken;
    }

    public Uri Endpoint { get; }

    public CallInvoker Invoker { get; }

    /// <summary>Options for the next call: a fresh deadline (when a timeout is set) and the command's cancellation.</summary>
    public CallOptions NewCallOptions() => new(
        deadline: _timeout is { } timeout ? _time.GetUtcNow().UtcDateTime + timeout : null,
        cancellationToken: _cancellationToken);

    public void Dispose() => _channel.Dispose();
}
