using System.Net;
using System.Net.Sockets;

namespace EffServe.Testing;

/// <summary>Ports on the loopback interface: one nobody listens on, and waiting for one to be free again.</summary>
public static class LoopbackPorts
{
    /// <summary>A port that was free a moment ago; nothing listens there unless someone binds it later.</summary>
    public static int Unused()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        try
        {
            return ((IPEndPoint)listener.LocalEndpoint).Port;
        }
        finally
        {
            listener.Stop();
        }
    }

    /// <summary>
    /// Waits until <paramref name="port"/> can be bound again (a server that just stopped may hold it
    /// for a moment); gives up after <paramref name="timeout"/>.
    /// </summary>
    public static async Task WaitUntilFreeAsync(int port, TimeSpan timeout)
    {
        using var giveUp = new CancellationTokenSource(timeout);
        while (true)
        {
            var listener = new TcpListener(IPAddress.Loopback, port);
            try
            {
                listener.Start();
                return;
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressAlreadyInUse && !giveUp.IsCancellationRequested)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(50), CancellationToken.None);
            }
            finally
            {
                listener.Stop();
            }
        }
    }
}
