using System.Net.Http;
using System.Net.Sockets;

namespace EffServe.Gateway.Routing;

/// <summary>Which failures of a forwarded call say that the replica cannot be reached at all.</summary>
internal static class ReplicaFailures
{
    /// <summary>
    /// True when the call failed because the replica could not be reached (refused, unreachable,
    /// timed out connecting); false for everything one client's call can cause on a connection
    /// that works: a reset stream, a cancelled call, a malformed or oversize answer, the replica
    /// ending one connection.
    /// </summary>
    public static bool IsUnreachable(Exception? exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            if (e is SocketException socket)
            {
                return socket.SocketErrorCode is SocketError.ConnectionRefused or SocketError.HostUnreachable or SocketError.NetworkUnreachable
                    or SocketError.HostNotFound or SocketError.TimedOut or SocketError.HostDown or SocketError.NetworkDown;
            }

            if (e is HttpRequestException { HttpRequestError: HttpRequestError.ConnectionError or HttpRequestError.NameResolutionError } http && http.InnerException is not SocketException)
            {
                return http.InnerException is null or TimeoutException or OperationCanceledException;
            }
        }

        return false;
    }
}
