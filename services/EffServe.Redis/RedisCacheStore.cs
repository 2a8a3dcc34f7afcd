using EffServe.Core.Jobs;
using StackExchange.Redis;

namespace EffServe.Redis;

/// <summary>The response cache's second level: one Redis string per entry, expiring with its TTL.</summary>
public sealed class RedisCacheStore(RedisConnection redis)
{
    public bool IsConfigured => redis.IsConfigured;

    /// <summary>The stored entry, or null when there is none; throws <see cref="RedisUnavailableException"/> when Redis cannot answer.</summary>
    public async Task<byte[]?> GetAsync(string model, string key, CancellationToken cancellationToken)
    {
        var value = await redis.RunAsync(db => db.StringGetAsync(JobKeys.Cache(model, key)), cancellationToken).ConfigureAwait(false);
        return value.IsNull ? null : (byte[]?)value;
    }

    public Task SetAsync(string model, string key, byte[] value, TimeSpan ttl, CancellationToken cancellationToken) =>
        redis.RunAsync(db => db.StringSetAsync(JobKeys.Cache(model, key), value, ttl), cancellationToken);
}
