namespace EffServe.Core.Caching;

public enum BreakerState
{
    /// <summary>Calls go through.</summary>
    Closed,

    /// <summary>Calls are refused at once until the open period ends.</summary>
    Open,

    /// <summary>One probe call goes through; its outcome closes or reopens the breaker.</summary>
    HalfOpen,
}

/// <summary>
/// A circuit breaker over a remote dependency: after <c>failureThreshold</c> failures in a row it
/// opens and refuses calls for <c>openFor</c>; then it lets one probe through, which closes it on
/// success or opens it again on failure. Thread-safe; time comes from the injected clock.
/// </summary>
public sealed class CircuitBreaker
{
    private readonly int _failureThreshold;
    private readonly TimeSpan _openFor;
    private readonly TimeProvider _time;
    private readonly Lock _lock = new();
    private BreakerState _state = BreakerState.Closed;
    private int _failures;
    private long _openedAt;
    private bool _probing;

    public CircuitBreaker(int failureThreshold, TimeSpan openFor, TimeProvider time)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(failureThreshold, 1);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(openFor, TimeSpan.Zero);
        _failureThreshold = failureThreshold;
        _openFor = openFor;
        _time = time;
    }

    /// <summary>Raised after each change of state, outside the breaker's lock: (from, to).</summary>
    public event Action<BreakerState, BreakerState>? StateChanged;

    public BreakerState State
    {
        get
        {
            lock (_lock)
            {
                return _state;
            }
        }
    }

    /// <summary>Whether a call may go out now; a true answer must be followed by <see cref="Success"/> or <see cref="Failure"/>.</summary>
    public bool TryEnter()
    {
        BreakerState from;
        lock (_lock)
        {
            switch (_state)
            {
                case BreakerState.Closed:
                    return true;
                case BreakerState.HalfOpen:
                    if (_probing)
                    {
                        return false;
                    }

                    _probing = true;
                    return true;
                default:
                    if (_time.GetElapsedTime(_openedAt) < _openFor)
                    {
                        return false;
                    }

                    from = _state;
                    _state = BreakerState.HalfOpen;
                    _probing = true;
                    break;
            }
        }

        StateChanged?.Invoke(from, BreakerState.HalfOpen);
        return true;
    }

    /// <summary>Ends an admitted call that neither succeeded nor failed (its caller gave up), so a probe slot is not held forever.</summary>
    public void Abandon()
    {
        lock (_lock)
        {
            _probing = false;
        }
    }

    public void Success()
    {
        BreakerState from;
        lock (_lock)
        {
            _failures = 0;
            _probing = false;
            if (_state == BreakerState.Closed)
            {
                return;
            }

            from = _state;
            _state = BreakerState.Closed;
        }

        StateChanged?.Invoke(from, BreakerState.Closed);
    }

    public void Failure()
    {
        BreakerState from;
        lock (_lock)
        {
            _probing = false;
            _failures++;
            if (_state == BreakerState.Open || (_state == BreakerState.Closed && _failures < _failureThreshold))
            {
                return;
            }

            from = _state;
            _state = BreakerState.Open;
            _openedAt = _time.GetTimestamp();
        }

        StateChanged?.Invoke(from, BreakerState.Open);
    }
}
