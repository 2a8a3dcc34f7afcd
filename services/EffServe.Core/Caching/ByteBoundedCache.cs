namespace EffServe.Core.Caching;

/// <summary>
/// An in-process cache bounded by the bytes of its values: least recently used entries leave
/// first when a new one would pass the bound, and every entry expires at its own time. An entry
/// larger than the whole bound is not kept. Thread-safe (one lock; every operation is O(1)).
/// </summary>
public sealed class ByteBoundedCache<TValue>
    where TValue : class
{
    private readonly Dictionary<string, LinkedListNode<Entry>> _entries = new(StringComparer.Ordinal);
    private readonly LinkedList<Entry> _recency = new();
    private readonly TimeProvider _time;
    private readonly Lock _lock = new();
    private long _bytes;

    public ByteBoundedCache(long maxBytes, TimeProvider time)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxBytes);
        MaxBytes = maxBytes;
        _time = time;
    }

    public long MaxBytes { get; }

    /// <summary>Bytes of the values held now.</summary>
    public long Bytes
    {
        get
        {
            lock (_lock)
            {
                return _bytes;
            }
        }
    }

    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _entries.Count;
            }
        }
    }

    public bool TryGet(string key, out TValue value)
    {
        var now = _time.GetUtcNow();
        lock (_lock)
        {
            if (_entries.TryGetValue(key, out var node))
            {
                if (node.Value.ExpiresAt > now)
                {
                    _recency.Remove(node);
                    _recency.AddFirst(node);
                    value = node.Value.Value;
                    return true;
                }

                RemoveNode(node);
            }
        }

        value = null!;
        return false;
    }

    /// <summary>Stores <paramref name="value"/> of <paramref name="bytes"/> bytes for <paramref name="ttl"/>, replacing any entry of the key.</summary>
    public void Set(string key, TValue value, long bytes, TimeSpan ttl)
    {
        var expires = _time.GetUtcNow() + ttl;
        lock (_lock)
        {
            if (_entries.TryGetValue(key, out var old))
            {
                RemoveNode(old);
            }

            if (bytes > MaxBytes || ttl <= TimeSpan.Zero)
            {
                return;
            }

            while (_bytes + bytes > MaxBytes && _recency.Last is { } last)
            {
                RemoveNode(last);
            }

            var node = _recency.AddFirst(new Entry(key, value, bytes, expires));
            _entries[key] = node;
            _bytes += bytes;
        }
    }

    public void Remove(string key)
    {
        lock (_lock)
        {
            if (_entries.TryGetValue(key, out var node))
            {
                RemoveNode(node);
            }
        }
    }

    private void RemoveNode(LinkedListNode<Entry> node)
    {
        _recency.Remove(node);
        _entries.Remove(node.Value.Key);
        _bytes -= node.Value.Bytes;
    }

    private sealed record Entry(string Key, TValue Value, long Bytes, DateTimeOffset ExpiresAt);
}
