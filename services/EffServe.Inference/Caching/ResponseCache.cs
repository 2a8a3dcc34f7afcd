using System.Diagnostics;
using EffServe.Contracts.Inference;
using EffServe.Core.Accounting;
using EffServe.Core.Caching;
using EffServe.Core.Protocol;
using EffServe.Core.Zoo;
using EffServe.Inference.Serving;
using EffServe.Redis;
using EffServe.ServiceDefaults.Instrumentation;
using Microsoft.Extensions.Options;

namespace EffServe.Inference.Caching;

/// <summary>
/// The response cache in front of the engine: an in-process level bounded by bytes, then Redis.
/// A request of a model that opted in is validated and keyed (<see cref="CacheKey"/>); a stored
/// answer whose variant meets the request's accuracy floor is served without running anything (no
/// queue, no batch) and charged its lookup only. Identical concurrent misses run once. Redis
/// trouble never fails a request: its calls are bounded and behind a circuit breaker, and a miss in
/// Redis is a miss. Every answer says <c>effserve.cache</c> = hit, miss or bypass.
/// </summary>
public sealed class ResponseCache
{
    public const string Hit = "hit";
    public const string Miss = "miss";
    public const string Bypass = "bypass";

    private readonly InferenceEngine _engine;
    private readonly CacheOptions _options;
    private readonly RedisCacheStore _l2;
    private readonly Accountant _accountant;
    private readonly InferenceInstrumentation _telemetry;
    private readonly TimeProvider _time;
    private readonly ByteBoundedCache<CachedAnswer> _l1;
    private readonly SingleFlight<Computed> _flights = new();

    public ResponseCache(InferenceEngine engine, IOptions<CacheOptions> options, RedisCacheStore l2, Accountant accountant, InferenceInstrumentation telemetry, TimeProvider time)
    {
        _engine = engine;
        _options = options.Value;
        _l2 = l2;
        _accountant = accountant;
        _telemetry = telemetry;
        _time = time;
        _l1 = new ByteBoundedCache<CachedAnswer>(_options.L1MaxBytes, time);
    }

    /// <summary>Bytes the in-process level holds now.</summary>
    public long L1Bytes => _l1.Bytes;

    /// <summary>Answers <paramref name="request"/> from the cache or the engine; <paramref name="deadline"/> is the call's gRPC deadline (<see cref="DateTime.MaxValue"/> for none).</summary>
    public async Task<ModelInferResponse> InferAsync(ModelInferRequest request, DateTime deadline, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        var served = _engine.Resolve(request.ModelName, request.ModelVersion);
        var definition = served.Definition;
        if (!_options.IsEnabled(definition.Name))
        {
            return Mark(await RunAsync(request, deadline, cancellationToken).ConfigureAwait(false), Bypass);
        }

        var parameters = RequestParameters.Parse(request.Parameters);
        if (parameters.Cache == CacheMode.Bypass)
        {
            return Mark(await RunAsync(request, deadline, cancellationToken).ConfigureAwait(false), Bypass);
        }

        var cpuScope = CpuClock.Best(CpuClockScope.Thread);
        var cpuStarted = CpuClock.Nanoseconds(cpuScope);
        var inputs = TensorCodec.DecodeInputs(request, definition);
        var outputs = TensorCodec.ResolveOutputs(request, definition);
        var key = CacheKey.Compute(new CacheKeyParts(definition.Name, definition.Version, definition.Revision, inputs, outputs, parameters.Variant, parameters.ExitThreshold));
        var cpuUsed = CpuClock.Nanoseconds(cpuScope) - cpuStarted;

        if (parameters.Cache == CacheMode.Use)
        {
            var found = await LookupAsync(definition.Name, key, cancellationToken).ConfigureAwait(false);
            if (found is not null && found.Meets(parameters.MinAccuracy))
            {
                return Served(served, request, found, started, cpuUsed);
            }
        }

        var (answer, shared) = await _flights.RunAsync(key, async token =>
        {
            var response = await RunAsync(request, deadline, token).ConfigureAwait(false);
            var stored = CachedAnswer.FromResponse(response, AccuracyOf(definition, response));
            Store(definition.Name, key, stored);
            return new Computed(stored, response);
        }, cancellationToken).ConfigureAwait(false);

        if (shared && answer.Stored.Meets(parameters.MinAccuracy))
        {
            return Served(served, request, answer.Stored, started, cpuUsed);
        }

        if (shared)
        {
            // The answer computed for another request does not meet this one's floor: run it anew.
            answer = new Computed(null!, await RunAsync(request, deadline, cancellationToken).ConfigureAwait(false));
        }

        served.Statistics.CacheMiss.Add(Nanoseconds(started));
        _telemetry.CacheMiss(definition.Name);
        return Mark(answer.Response, Miss);
    }

    /// <summary>The engine, for an online request.</summary>
    private Task<ModelInferResponse> RunAsync(ModelInferRequest request, DateTime deadline, CancellationToken cancellationToken)
    {
        return _engine.InferAsync(request, InferenceOrigin.Online, deadline, cancellationToken);
    }

    private async Task<CachedAnswer?> LookupAsync(string model, string key, CancellationToken cancellationToken)
    {
        if (_l1.TryGet(key, out var local))
        {
            return local;
        }

        if (!_l2.IsConfigured)
        {
            return null;
        }

        try
        {
            var bytes = await _l2.GetAsync(model, key, cancellationToken).ConfigureAwait(false);
            var remote = bytes is null ? null : CachedAnswer.FromBytes(bytes);
            if (remote is not null)
            {
                _l1.Set(key, remote, remote.Bytes.Length, L1Ttl(model));
            }

            return remote;
        }
        catch (RedisUnavailableException)
        {
            return null; // counted and logged by the connection's breaker; the request goes on
        }
    }

    private void Store(string model, string key, CachedAnswer answer)
    {
        _l1.Set(key, answer, answer.Bytes.Length, L1Ttl(model));
        if (_l2.IsConfigured)
        {
            _ = WriteRemoteAsync(model, key, answer.Bytes, _options.TtlOf(model));
        }
    }

    /// <summary>Fills Redis in the background: the response does not wait for it, and a failure only costs a later miss.</summary>
    private async Task WriteRemoteAsync(string model, string key, byte[] bytes, TimeSpan ttl)
    {
        try
        {
            await _l2.SetAsync(model, key, bytes, ttl, CancellationToken.None).ConfigureAwait(false);
        }
        catch (RedisUnavailableException)
        {
            // counted and logged by the connection's breaker
        }
    }

    private TimeSpan L1Ttl(string model)
    {
        var ttl = _options.TtlOf(model);
        var cap = TimeSpan.FromSeconds(_options.L1MaxTtlSeconds);
        return ttl < cap ? ttl : cap;
    }

    private ModelInferResponse Served(ServedModel served, ModelInferRequest request, CachedAnswer answer, long started, long cpuNanoseconds)
    {
        var response = answer.ToResponse(request);
        var lookupNs = Nanoseconds(started);
        var charge = _accountant.ChargeLookup(new RunUsage(lookupNs, cpuNanoseconds));
        _accountant.TotalsFor(served.Definition.Name).Add(charge);
        var p = response.Parameters;
        p[ParameterNames.QueueUs] = new InferParameter { Int64Param = 0 };
        p[ParameterNames.ComputeUs] = new InferParameter { Int64Param = 0 };
        p[AccountingParameters.EnergyMj] = new InferParameter { DoubleParam = charge.EnergyMillijoules };
        p[AccountingParameters.EnergySource] = new InferParameter { StringParam = charge.Source.ToLabel() };
        p[AccountingParameters.CostUsd] = new InferParameter { DoubleParam = charge.CostUsd };
        p[AccountingParameters.CarbonMg] = new InferParameter { DoubleParam = charge.CarbonMg };
        var batch = p.TryGetValue(ParameterNames.BatchSize, out var b) ? (int)b.Int64Param : 1;
        served.Statistics.RecordCacheHit(batch, lookupNs, lookupNs, _time.GetUtcNow().ToUnixTimeMilliseconds());
        var tags = new ModelTags(served.Definition.Name, answer.Variant, Device.Cpu.ToLabel());
        _telemetry.CacheHit(served.Definition.Name);
        _telemetry.Charged(tags, new ChargeReading(charge.Source.ToLabel(), charge.EnergyMillijoules, charge.CostUsd));
        _telemetry.DeviceUsed(tags, charge.DeviceSeconds, charge.CarbonMg);
        _telemetry.RequestCompleted(tags, "ok", lookupNs / 1e9);
        return Mark(response, Hit);
    }

    private static ModelInferResponse Mark(ModelInferResponse response, string outcome)
    {
        response.Parameters[ParameterNames.Cache] = new InferParameter { StringParam = outcome };
        Activity.Current?.SetTag(SpanAttributes.Cache, outcome);
        return response;
    }

    /// <summary>
    /// Accuracy of what answered, from the zoo profile: the early-exit variant's accuracy at the
    /// threshold it ran with when the profile measured that threshold, else the variant's; null when
    /// the profile has none (such an answer serves only requests without an accuracy floor).
    /// </summary>
    internal static double? AccuracyOf(ModelDefinition model, ModelInferResponse response)
    {
        if (!response.Parameters.TryGetValue(ParameterNames.Variant, out var name) || model.FindVariant(name.StringParam) is not { } variant)
        {
            return null;
        }

        if (response.Parameters.TryGetValue(ParameterNames.ExitThreshold, out var t) && variant.Profile is { } profile
            && profile.Thresholds.FirstOrDefault(p => Math.Abs(p.Threshold - t.DoubleParam) < 1e-9) is { } point)
        {
            return point.Accuracy;
        }

        return variant.Profile?.Accuracy;
    }

    private static long Nanoseconds(long from) => Stopwatch.GetElapsedTime(from).Ticks * 100;

    private sealed record Computed(CachedAnswer Stored, ModelInferResponse Response);
}
