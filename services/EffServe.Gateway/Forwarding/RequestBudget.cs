using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;

namespace EffServe.Gateway.Forwarding;

/// <summary>
/// A count of request bytes the gateway holds, with a ceiling: what a call reads before it is
/// routed is taken from its connection's budget and from the process's, and given back when the
/// call ends. A call that would pass either ceiling is refused at once (RESOURCE_EXHAUSTED), so no
/// client, and no number of clients, can make the gateway hold more than the ceilings.
/// </summary>
public sealed class RequestBudget(long limit)
{
    private long _held;

    public long Limit { get; } = limit;

    public long Held => Volatile.Read(ref _held);

    public bool TryTake(long bytes)
    {
        while (true)
        {
            var held = Volatile.Read(ref _held);
            if (held + bytes > Limit)
            {
                return false;
            }

            if (Interlocked.CompareExchange(ref _held, held + bytes, held) == held)
            {
                return true;
            }
        }
    }

    public void Give(long bytes) => Interlocked.Add(ref _held, -bytes);
}

/// <summary>The per-connection request budget, made when Kestrel accepts a connection and found by its streams.</summary>
internal static class ConnectionBudgets
{
    private const string Item = "effserve.request-budget";

    /// <summary>A connection middleware that gives each connection its budget before any stream can run.</summary>
    public static ConnectionDelegate Install(ConnectionDelegate next, long limit) => context =>
    {
        context.Items[Item] = new RequestBudget(limit);
        return next(context);
    };

    /// <summary>The budget of the call's connection; a fresh one when the connection has none (a test server).</summary>
    public static RequestBudget For(HttpContext context, long limit) =>
        context.Features.Get<IConnectionItemsFeature>()?.Items.TryGetValue(Item, out var budget) == true && budget is RequestBudget b
            ? b
            : new RequestBudget(limit);
}
