using System.Net;
using System.Net.Sockets;

namespace EffServe.GatewayBench;

/// <summary>
/// The diagnostic arm tcp-pump: a plain TCP relay, each client connection paired with one connection
/// to the service and bytes copied both ways as they arrive, understanding nothing of HTTP/2. It is
/// the floor of any relay written on .NET sockets here: what a connection-level HTTP/2 relay could
/// reach at best, before parsing a single frame.
/// </summary>
internal static class TcpPump
{
    public const string Verb = "serve-pump";

    /// <summary>Relays until killed: <c>serve-pump --listen 127.0.0.1:P --destination 127.0.0.1:Q</c>.</summary>
    public static async Task<int> RunAsync(string[] args)
    {
        var listen = Arg(args, "--listen");
        var destination = Arg(args, "--destination");
        if (listen is null || destination is null || !IPEndPoint.TryParse(listen, out var local) || !IPEndPoint.TryParse(destination, out var remote))
        {
            await Console.Error.WriteLineAsync("usage: serve-pump --listen 127.0.0.1:P --destination 127.0.0.1:Q").ConfigureAwait(false);
            return 2;
        }

        using var listener = new Socket(local.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(local);
        listener.Listen(512);
        while (true)
        {
            var client = await listener.AcceptAsync().ConfigureAwait(false);
            _ = RelayAsync(client, remote);
        }
    }

    private static string? Arg(string[] args, string name)
    {
        var at = Array.IndexOf(args, name);
        return at >= 0 && at + 1 < args.Length ? args[at + 1] : null;
    }

    private static async Task RelayAsync(Socket client, IPEndPoint remote)
    {
        using var _ = client;
        using var backend = new Socket(remote.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        client.NoDelay = true;
        try
        {
            await backend.ConnectAsync(remote).ConfigureAwait(false);
            await Task.WhenAny(CopyAsync(client, backend), CopyAsync(backend, client)).ConfigureAwait(false);
        }
        catch (SocketException)
        {
            // A side went away: the other is closed with it.
        }
    }

    private static async Task CopyAsync(Socket from, Socket to)
    {
        var buffer = new byte[64 * 1024];
        while (true)
        {
            var read = await from.ReceiveAsync(buffer, SocketFlags.None).ConfigureAwait(false);
            if (read == 0)
            {
                to.Shutdown(SocketShutdown.Send);
                return;
            }

            for (var sent = 0; sent < read;)
            {
                sent += await to.SendAsync(buffer.AsMemory(sent, read - sent), SocketFlags.None).ConfigureAwait(false);
            }
        }
    }
}
