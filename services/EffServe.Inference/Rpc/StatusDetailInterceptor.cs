using Grpc.Core;
using Grpc.Core.Interceptors;

namespace EffServe.Inference.Rpc;

/// <summary>
/// The last word on every status a handler of this service ends with: a detail longer than
/// <see cref="StatusDetails.MaxBytes"/> is cut there, whichever service, validation step, engine or
/// job path wrote it. Errors are written short where they are made; this is the guard behind them.
/// A request that does not even parse ends before any handler runs; <see cref="ValidatingServiceBinder"/>
/// writes its message, short by construction.
/// </summary>
internal sealed class StatusDetailInterceptor : Interceptor
{
    public override Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation) =>
        Guard(() => continuation(request, context));

    public override Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation) =>
        Guard(() => continuation(requestStream, context));

    public override Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation) =>
        Guard(async () =>
        {
            await continuation(request, responseStream, context).ConfigureAwait(false);
            return true;
        });

    public override Task DuplexStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation) =>
        Guard(async () =>
        {
            await continuation(requestStream, responseStream, context).ConfigureAwait(false);
            return true;
        });

    private static async Task<T> Guard<T>(Func<Task<T>> handler)
    {
        try
        {
            return await handler().ConfigureAwait(false);
        }
        catch (RpcException e) when (StatusDetails.IsTooLong(e.Status.Detail))
        {
            throw new RpcException(new Status(e.StatusCode, StatusDetails.Cap(e.Status.Detail), e.Status.DebugException), e.Trailers);
        }
    }
}
