using EffServe.Core.Caching;
using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace EffServe.Redis;

/// <summary>
/// The process's one Redis connection (a single multiplexer) and the guard every call goes
/// through: a bounded timeout, and a circuit breaker that stops calling a Redis that keeps failing
/// and probes it again later. State changes are logged once each and raised to listeners (metrics).
/// Without a connection string the connection is not configured and every call is refused at once.
/// </summary>
public sealed class RedisConnection : IDisposable
{
    private readonly RedisOptions _options;
    private readonly ILogger _logger;
    private readonly ConfigurationOptions? _configuration;
    private readonly Lock _lock = new();
    private Task<ConnectionMultiplexer>? _connecting;
    private ConnectionMultiplexer? _multiplexer;
    private string _lastError = "";

    public RedisConnection(string? connectionString, RedisOptions options, TimeProvider time, ILogger<RedisConnection> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
        _logger = logger;
        Breaker = new CircuitBreaker(options.BreakerFailures, TimeSpan.FromSeconds(options.BreakerOpenSeconds), time);
        Breaker.StateChanged += OnStateChanged;
        if (!string.IsNullOrWhiteSpace(connectionString))
        {
            _configuration = ConfigurationOptions.Parse(connectionString);
            _configuration.AbortOnConnectFail = false;
            _configuration.ConnectTimeout = options.ConnectTimeoutMs;
            _configuration.AsyncTimeout = options.OperationTimeoutMs;
            _configuration.SyncTimeout = options.OperationTimeoutMs;
            _configuration.ReconnectRetryPolicy = new LinearRetry(options.ReconnectIntervalMs);
            _configuration.ClientName ??= "effserve";
        }
    }

    /// <summary>Whether a connection string was given (ConnectionStrings:redis).</summary>
    public bool IsConfigured => _configuration is not null;

    public CircuitBreaker Breaker { get; }

    /// <summary>Raised after each breaker state change: (from, to).</summary>
    public event Action<BreakerState, BreakerState>? StateChanged;

    /// <summary>
    /// Runs <paramref name="call"/> against the database within the operation timeout; throws
    /// <see cref="RedisUnavailableException"/> when Redis is not configured, the breaker is open,
    /// or the call fails or times out.
    /// </summary>
    public async Task<T> RunAsync<T>(Func<IDatabase, Task<T>> call, CancellationToken cancellationToken, TimeSpan? timeout = null)
    {
        ArgumentNullException.ThrowIfNull(call);
        if (_configuration is null)
        {
            throw new RedisUnavailableException("Redis is not configured; set ConnectionStrings:redis (environment ConnectionStrings__redis).");
        }

        if (!Breaker.TryEnter())
        {
            throw new RedisUnavailableException($"Redis is unavailable (circuit breaker open after repeated failures: {_lastError}).");
        }

        try
        {
            var limit = timeout ?? TimeSpan.FromMilliseconds(_options.OperationTimeoutMs);
            var connection = await Connect().WaitAsync(TimeSpan.FromMilliseconds(Math.Max(_options.ConnectTimeoutMs, _options.OperationTimeoutMs)), cancellationToken).ConfigureAwait(false);
            _multiplexer ??= connection;
            if (!connection.IsConnected)
            {
                throw new TimeoutException("no connection to Redis");
            }

            var result = await call(connection.GetDatabase()).WaitAsync(limit, cancellationToken).ConfigureAwait(false);
            Breaker.Success();
            return result;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            Breaker.Abandon();
            throw;
        }
        catch (Exception e) when (e is RedisException or TimeoutException or RedisTimeoutException or ObjectDisposedException)
        {
            _lastError = e.Message;
            Breaker.Failure();
            throw new RedisUnavailableException($"Redis did not answer: {e.Message}", e);
        }
    }

    /// <summary>Runs a call that returns nothing (see <see cref="RunAsync{T}"/>).</summary>
    public Task RunAsync(Func<IDatabase, Task> call, CancellationToken cancellationToken, TimeSpan? timeout = null) =>
        RunAsync<bool>(
            async db =>
            {
                await call(db).ConfigureAwait(false);
                return true;
            },
            cancellationToken,
            timeout);

    public void Dispose()
    {
        _multiplexer?.Dispose();
    }

    private Task<ConnectionMultiplexer> Connect()
    {
        lock (_lock)
        {
            if (_connecting is null || _connecting.IsFaulted || _connecting.IsCanceled)
            {
                RedisLog.Connecting(_logger, string.Join(",", _configuration!.EndPoints));
                _connecting = ConnectionMultiplexer.ConnectAsync(_configuration);
            }

            return _connecting;
        }
    }

    private void OnStateChanged(BreakerState from, BreakerState to)
    {
        switch (to)
        {
            case BreakerState.Open:
                RedisLog.Opened(_logger, Label(from), _lastError);
                break;
            case BreakerState.HalfOpen:
                RedisLog.Probing(_logger);
                break;
            default:
                RedisLog.Closed(_logger, Label(from));
                break;
        }

        StateChanged?.Invoke(from, to);
    }

    /// <summary>A breaker state as a label: closed, open, half_open.</summary>
    public static string Label(BreakerState state) => state switch
    {
        BreakerState.Open => "open",
        BreakerState.HalfOpen => "half_open",
        _ => "closed",
    };
}
