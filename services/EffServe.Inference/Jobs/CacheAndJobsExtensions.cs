using EffServe.Inference.Caching;
using EffServe.Redis;
using EffServe.ServiceDefaults;
using EffServe.ServiceDefaults.Instrumentation;
using Microsoft.Extensions.Options;

namespace EffServe.Inference.Jobs;

public static class CacheAndJobsExtensions
{
    /// <summary>
    /// Registers the response cache (EffServe:Cache), Redis (ConnectionStrings:redis and
    /// EffServe:Redis: one connection for the process), the job store, the job service and its worker (EffServe:Jobs).
    /// </summary>
    public static WebApplicationBuilder AddCacheAndJobs(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddValidatedOptions<RedisOptions>(RedisOptions.SectionName, o => o.Validate());
        services.AddValidatedOptions<CacheOptions>(CacheOptions.SectionName, o => o.Validate());
        services.AddValidatedOptions<JobOptions>(JobOptions.SectionName, o => o.Validate());
        services.AddSingleton(sp =>
        {
            var connection = new RedisConnection(
                sp.GetRequiredService<IConfiguration>().GetConnectionString("redis"),
                sp.GetRequiredService<IOptions<RedisOptions>>().Value,
                sp.GetRequiredService<TimeProvider>(),
                sp.GetRequiredService<ILogger<RedisConnection>>());
            var telemetry = sp.GetRequiredService<InferenceInstrumentation>();
            connection.StateChanged += (_, to) => telemetry.RedisStateChanged(RedisConnection.Label(to));
            return connection;
        });
        services.AddSingleton<RedisCacheStore>();
        services.AddSingleton<RedisJobStore>();
        services.AddSingleton<ResponseCache>();
        services.AddHostedService<JobWorker>();
        return builder;
    }
}
