using System.Collections.Concurrent;

namespace EffServe.Core.Caching;

/// <summary>
/// Runs identical concurrent work once: the first caller of a key runs it, callers of the same key
/// that arrive meanwhile wait for its answer. A caller that stops waiting (its token) leaves the
/// work running for the others; when the work fails, each waiting caller runs it on its own, so no
/// caller gets an error that was another's (a deadline, a cancellation).
/// </summary>
public sealed class SingleFlight<TValue>
{
    private readonly ConcurrentDictionary<string, Task<TValue>> _flights = new(StringComparer.Ordinal);

    /// <summary>Keys with work in flight now.</summary>
    public int InFlight => _flights.Count;

    /// <summary>
    /// The answer for <paramref name="key"/>: from work already in flight, else from
    /// <paramref name="work"/> run now. <c>Shared</c> is true when the answer came from another caller's run.
    /// </summary>
    public async Task<(TValue Value, bool Shared)> RunAsync(string key, Func<CancellationToken, Task<TValue>> work, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(work);
        var mine = new TaskCompletionSource<TValue>(TaskCreationOptions.RunContinuationsAsynchronously);
        var flight = _flights.GetOrAdd(key, mine.Task);
        if (flight != mine.Task)
        {
            try
            {
                return (await flight.WaitAsync(cancellationToken).ConfigureAwait(false), true);
            }
            catch (Exception) when (!cancellationToken.IsCancellationRequested && flight.IsFaulted | flight.IsCanceled)
            {
                return (await work(cancellationToken).ConfigureAwait(false), false);
            }
        }

        try
        {
            var value = await work(cancellationToken).ConfigureAwait(false);
            mine.SetResult(value);
            return (value, false);
        }
        catch (Exception e)
        {
            mine.SetException(e);
            _ = mine.Task.Exception; // observed: waiters run their own
            throw;
        }
        finally
        {
            _flights.TryRemove(new KeyValuePair<string, Task<TValue>>(key, mine.Task));
        }
    }
}
