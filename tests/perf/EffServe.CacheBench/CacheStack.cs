using System.Globalization;
using EffServe.GatewayBench;
using EffServe.Testing;

namespace EffServe.CacheBench;

/// <summary>An inference service and the gateway in front of it, each a process of its own.</summary>
/// <param name="Name">What this replica is for (in the report).</param>
/// <param name="Service">The inference service.</param>
/// <param name="Gateway">The gateway routing every measured model to it.</param>
/// <param name="GatewayAddress">Where clients call.</param>
internal sealed record Replica(string Name, ChildProcess Service, ChildProcess Gateway, Uri GatewayAddress)
{
    /// <summary>Processes whose CPU counts for a call through this replica: gateway and service (Redis is counted apart).</summary>
    public IReadOnlyList<int> Pids => [Gateway.Pid, Service.Pid];
}

/// <summary>
/// What the benchmark runs against: one redis-server on a free loopback port, and two replicas
/// sharing it. "cached" has both levels (the in-process L1 and Redis) and runs the job worker;
/// "redis-only" has no in-process level (L1MaxBytes=0) and no job worker, so each of its hits is a
/// Redis hit, as on a replica that has not seen the input.
/// </summary>
internal sealed class CacheStack : IAsyncDisposable
{
    /// <summary>Entries outlive the run in both levels, so that a "hit" arm never meets an expired entry.</summary>
    public const int TtlSeconds = 3600;

    private CacheStack(RedisServer redis, Replica cached, Replica redisOnly)
    {
        Redis = redis;
        Cached = cached;
        RedisOnly = redisOnly;
    }

    public RedisServer Redis { get; }

    public Replica Cached { get; }

    public Replica RedisOnly { get; }

    /// <summary>The redis-server's pid (for its CPU time).</summary>
    public int RedisPid => Redis.Pid ?? throw new BenchException("redis-server is no longer running.");

    /// <summary>The settings both services share: the models, caching on for each of them, Redis.</summary>
    public static IReadOnlyList<string> SharedSettings(string root, IReadOnlyList<string> models, string redis)
    {
        var settings = new List<string>
        {
            $"--EffServe:Inference:ZooPath={Path.Combine(root, "zoo")}",
            $"--ConnectionStrings:redis={redis}",
            $"--EffServe:Cache:L1MaxTtlSeconds={TtlSeconds}",
            "--Logging:LogLevel:Default=Warning",
        };
        for (var i = 0; i < models.Count; i++)
        {
            settings.Add(string.Create(CultureInfo.InvariantCulture, $"--EffServe:Inference:Models:{i}={models[i]}"));
            settings.Add($"--EffServe:Cache:Models:{models[i]}:Enabled=true");
            settings.Add(string.Create(CultureInfo.InvariantCulture, $"--EffServe:Cache:Models:{models[i]}:TtlSeconds={TtlSeconds}"));
        }

        return settings;
    }

    /// <summary>Extra settings of the Redis-only replica.</summary>
    public static IReadOnlyList<string> RedisOnlySettings => ["--EffServe:Cache:L1MaxBytes=0", "--EffServe:Jobs:WorkerEnabled=false"];

    public static async Task<CacheStack> StartAsync(string root, string serviceDll, string gatewayDll, IReadOnlyList<string> models, IReadOnlyList<string> cachedSettings)
    {
        if (Prerequisites.Find("redis-server") is null)
        {
            throw new BenchException("redis-server is not installed; run tests/prerequisites.sh or `apt-get install -y redis-server` (Debian's package; it does not start a server) and try again.");
        }

        var redis = await RedisServer.StartAsync().ConfigureAwait(false);
        Log.Line($"redis-server on {redis.ConnectionString} (pid {redis.Pid}); starting two inference services ...");
        var shared = SharedSettings(root, models, redis.ConnectionString);
        var (cachedService, cachedAddress) = StartService("service (L1 + Redis)", root, serviceDll, [.. shared, .. cachedSettings]);
        var (redisOnlyService, redisOnlyAddress) = StartService("service (Redis only)", root, serviceDll, [.. shared, .. RedisOnlySettings]);
        await Task.WhenAll(
            Readiness.WaitReadyAsync(cachedService, cachedAddress, null, 180),
            Readiness.WaitReadyAsync(redisOnlyService, redisOnlyAddress, null, 180)).ConfigureAwait(false);
        Log.Line("services ready; starting a gateway in front of each ...");
        var cached = await StartGatewayAsync("cached", root, gatewayDll, cachedService, cachedAddress, models).ConfigureAwait(false);
        var redisOnly = await StartGatewayAsync("redis-only", root, gatewayDll, redisOnlyService, redisOnlyAddress, models).ConfigureAwait(false);
        return new CacheStack(redis, cached, redisOnly);
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var replica in new[] { Cached, RedisOnly })
        {
            replica.Gateway.Dispose();
            replica.Service.Dispose();
        }

        await Redis.DisposeAsync().ConfigureAwait(false);
    }

    private static (ChildProcess Process, Uri Address) StartService(string name, string root, string dll, IReadOnlyList<string> settings)
    {
        var address = new Uri($"http://127.0.0.1:{Ports.Free()}");
        var process = ChildProcess.Start(name, "dotnet", [
            dll,
            "--contentRoot", Path.GetDirectoryName(dll)!,
            "--urls", address.ToString().TrimEnd('/'),
            .. settings,
        ], root);
        return (process, address);
    }

    private static async Task<Replica> StartGatewayAsync(string name, string root, string dll, ChildProcess service, Uri serviceAddress, IReadOnlyList<string> models)
    {
        var address = new Uri($"http://127.0.0.1:{Ports.Free()}");
        var arguments = new List<string>
        {
            dll,
            "--contentRoot", Path.GetDirectoryName(dll)!,
            "--urls", address.ToString().TrimEnd('/'),
            "--Logging:LogLevel:Default=Warning",
        };
        arguments.AddRange(models.Select(m => $"--EffServe:Gateway:Models:{m}:Destinations:0={serviceAddress.ToString().TrimEnd('/')}"));
        var gateway = ChildProcess.Start($"gateway ({name})", "dotnet", arguments, root);
        await Readiness.WaitReadyAsync(gateway, address, null, 120).ConfigureAwait(false);
        return new Replica(name, service, gateway, address);
    }
}
