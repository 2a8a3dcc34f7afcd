using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Reflection;

namespace EffServe.ServiceDefaults.Instrumentation;

/// <summary>Who a measurement is about: the model, its variant and the device it ran on (all bounded).</summary>
public readonly record struct ModelTags(string Model, string Variant, string Device);

/// <summary>One model's load: the autoscaling signal (offered load beside this replica's capacity) and the requests inside now.</summary>
public readonly record struct LoadReading(string Model, double OfferedPerSecond, double CapacityPerSecond, long Active, long Queued);

/// <summary>
/// Idle power of a device of the machine <paramref name="Host"/>, reported apart from anything
/// charged to requests. Every process on the machine reports the same figure: take it once per host.
/// </summary>
public readonly record struct PowerReading(string Host, string Device, string Source, double Watts);

/// <summary>What one completed request was charged: its energy (measured or modelled) and its price.</summary>
public readonly record struct ChargeReading(string Source, double EnergyMillijoules, double CostUsd);

/// <summary>
/// The inference service's meter and activity source, created once from <see cref="IMeterFactory"/>.
/// Metric names follow <c>effserve.*</c>; tags are only model, variant, device and outcome, plus
/// the small fixed sets <c>slo_class</c>, <c>stage</c> and <c>source</c> where a metric needs them
/// (docs/observability.md lists every one). Span names and attributes live here too.
/// </summary>
public sealed class InferenceInstrumentation : IDisposable
{
    /// <summary>Name of the meter and of the activity source.</summary>
    public const string Name = "EffServe.Inference";

    /// <summary>Bucket edges of latency histograms, seconds: the SLO classes 1–500 ms and beyond, finer below 1 ms.</summary>
    public static readonly IReadOnlyList<double> LatencyBuckets = [0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10];

    /// <summary>SLO classes, milliseconds: a request's class is the smallest one at least its effserve.slo_ms.</summary>
    public static readonly IReadOnlyList<double> SloClassesMs = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000];

    private static readonly string s_version = typeof(InferenceInstrumentation).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0.0.0";
    private static readonly string[] s_sloClassLabels = [.. SloClassesMs.Select(c => c.ToString(CultureInfo.InvariantCulture)), "inf"];
    private static readonly string[] s_stageLabels = [.. Enumerable.Range(0, 17).Select(s => s.ToString(CultureInfo.InvariantCulture))];

    private readonly Meter _meter;
    private readonly Histogram<double> _requestDuration;
    private readonly Histogram<double> _queueDuration;
    private readonly Histogram<double> _computeDuration;
    private readonly Histogram<long> _batchSize;
    private readonly Histogram<double> _requestEnergy;
    private readonly Histogram<double> _requestCost;
    private readonly Counter<long> _slo;
    private readonly Counter<long> _exits;
    private readonly Counter<long> _cacheHits;
    private readonly Counter<long> _cacheMisses;
    private readonly Counter<long> _redisStates;
    private readonly Counter<long> _shed;
    private readonly Counter<long> _dropped;
    private readonly Counter<double> _deviceTime;
    private readonly Counter<double> _carbon;
    private Func<IEnumerable<LoadReading>> _load = static () => [];
    private Func<IEnumerable<PowerReading>> _idlePower = static () => [];

    public InferenceInstrumentation(IMeterFactory meterFactory)
    {
        ActivitySource = new ActivitySource(Name, s_version);
        _meter = meterFactory.Create(Name, s_version);
        var latency = new InstrumentAdvice<double> { HistogramBucketBoundaries = LatencyBuckets };
        _requestDuration = _meter.CreateHistogram("effserve.request.duration", "s", "Time from a request's arrival in the service to its response, by outcome.", advice: latency);
        _queueDuration = _meter.CreateHistogram("effserve.queue.duration", "s", "Time a request waited for a run slot.", advice: latency);
        _computeDuration = _meter.CreateHistogram("effserve.compute.duration", "s", "Time of each run (a batch), once per run.", advice: latency);
        _batchSize = _meter.CreateHistogram("effserve.batch.size", "{sample}", "Samples in each run.",
            advice: new InstrumentAdvice<long> { HistogramBucketBoundaries = [1, 2, 4, 8, 16, 32, 64, 128, 256] });
        _requestEnergy = _meter.CreateHistogram("effserve.request.energy", "mJ", "Energy attributed to each request; tag source says measured or modelled.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = Decades(1e-3, 1e4) });
        _requestCost = _meter.CreateHistogram("effserve.request.cost", "{USD}", "Device time attributed to each request × the device's price, US dollars.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = Decades(1e-11, 1e-3) });
        _slo = _meter.CreateCounter<long>("effserve.slo.requests", "{request}", "Requests that carried effserve.slo_ms, by outcome (met, missed) and SLO class.");
        _exits = _meter.CreateCounter<long>("effserve.early_exit.samples", "{sample}", "Samples of early-exit runs by the stage they left at.");
        _cacheHits = _meter.CreateCounter<long>("effserve.cache.hits", "{request}", "Requests answered from the response cache.");
        _cacheMisses = _meter.CreateCounter<long>("effserve.cache.misses", "{request}", "Requests the response cache could not answer.");
        _redisStates = _meter.CreateCounter<long>("effserve.cache.redis.state_changes", "{change}", "Changes of the Redis circuit breaker, by the state entered (outcome: open, half_open, closed); open means serving from the in-process cache only.");
        _shed = _meter.CreateCounter<long>("effserve.requests.shed", "{request}", "Requests refused before queueing, by reason (outcome).");
        _dropped = _meter.CreateCounter<long>("effserve.requests.dropped", "{request}", "Requests given up after they were admitted, by reason (outcome).");
        _deviceTime = _meter.CreateCounter<double>("effserve.device.time", "s", "Device time attributed to requests: CPU core-seconds, GPU busy seconds.");
        _carbon = _meter.CreateCounter<double>("effserve.carbon", "g", "Emissions attributed to requests, grams CO2e.");
        _meter.CreateObservableUpDownCounter("effserve.requests.active", () => ObserveLoad(r => r.Active), "{request}", "Requests in the service: decoding, queued or running.");
        _meter.CreateObservableUpDownCounter("effserve.queue.depth", () => ObserveLoad(r => r.Queued), "{request}", "Requests waiting for a run slot.");        _meter.CreateObservableGauge("effserve.capacity", () => ObserveLoad(r => r.CapacityPerSecond), "{request}/s",
            "Requests per second this replica can take for the model within its SLO: run slots × target utilisation ÷ smoothed compute seconds per request.");
        _meter.CreateObservableGauge("effserve.load", () => ObserveLoad(r => r.OfferedPerSecond), "{request}/s", "Requests per second offered to the model over the last window.");
        _meter.CreateObservableGauge("effserve.power.idle", ObserveIdlePower, "W", "Power the machine's devices draw with no run in progress, by host; every process on a host reports the same figure (take it once per host, never the sum). Never charged to requests.");
    }

    public ActivitySource ActivitySource { get; }

    /// <summary>The SLO class label of a budget: the smallest class edge (ms) at least <paramref name="sloMs"/>, or <c>inf</c>.</summary>
    public static string SloClass(double sloMs)
    {
        for (var i = 0; i < SloClassesMs.Count; i++)
        {
            if (sloMs <= SloClassesMs[i])
            {
                return s_sloClassLabels[i];
            }
        }

        return s_sloClassLabels[^1];
    }

    /// <summary>Sets where the capacity and load gauges read from (called once, by the engine).</summary>
    public void ObserveLoad(Func<IEnumerable<LoadReading>> readings) => _load = readings;

    /// <summary>Sets where the idle-power gauge reads from.</summary>
    public void ObserveIdlePower(Func<IEnumerable<PowerReading>> readings) => _idlePower = readings;

    /// <summary>How long a request that got a run slot waited for it.</summary>
    public void QueueWaited(ModelTags tags, double seconds) => _queueDuration.Record(seconds, Tags(tags));

    /// <summary>A finished request: its duration by outcome (<c>ok</c> or the gRPC status, snake case).</summary>
    public void RequestCompleted(ModelTags tags, string outcome, double seconds)
    {
        var list = Tags(tags);
        list.Add(TagNames.Outcome, outcome);
        _requestDuration.Record(seconds, list);
    }

    /// <summary>Whether a request that carried an SLO met it.</summary>
    public void SloOutcome(ModelTags tags, double sloMs, bool met)
    {
        var list = Tags(tags);
        list.Add(TagNames.Outcome, met ? "met" : "missed");
        list.Add(TagNames.SloClass, SloClass(sloMs));
        _slo.Add(1, list);
    }

    /// <summary>
    /// A run, once however many requests it served: its samples, its time, and the device time and
    /// carbon charged for it (the sums of its requests' shares).
    /// </summary>
    public void RunCompleted(ModelTags tags, int batchSize, double computeSeconds, double deviceSeconds, double carbonMg)
    {
        var list = Tags(tags);
        _batchSize.Record(batchSize, list);
        _computeDuration.Record(computeSeconds, list);
        _deviceTime.Add(deviceSeconds, list);
        _carbon.Add(carbonMg / 1000, list);
    }

    /// <summary>Device time and carbon charged outside a run (a cache lookup).</summary>
    public void DeviceUsed(ModelTags tags, double deviceSeconds, double carbonMg)
    {
        var list = Tags(tags);
        _deviceTime.Add(deviceSeconds, list);
        _carbon.Add(carbonMg / 1000, list);
    }

    /// <summary>The stages the samples of an early-exit run left at (1-based), once per run.</summary>
    public void EarlyExits(ModelTags tags, ReadOnlySpan<int> stages)
    {
        Span<int> counts = stackalloc int[s_stageLabels.Length];
        foreach (var stage in stages)
        {
            counts[Math.Clamp(stage, 0, counts.Length - 1)]++;
        }

        for (var s = 0; s < counts.Length; s++)
        {
            if (counts[s] > 0)
            {
                var list = Tags(tags);
                list.Add(TagNames.Stage, s_stageLabels[s]);
                _exits.Add(counts[s], list);
            }
        }
    }

    /// <summary>
    /// What a request was charged: energy and cost per request (their histograms' sums are the
    /// running totals). Device time and carbon are counted per run (<see cref="RunCompleted"/>).
    /// </summary>
    public void Charged(ModelTags tags, ChargeReading charge)
    {
        var list = Tags(tags);
        _requestCost.Record(charge.CostUsd, list);
        list.Add(TagNames.Source, charge.Source);
        _requestEnergy.Record(charge.EnergyMillijoules, list);
    }

    public void CacheHit(string model) => _cacheHits.Add(1, new KeyValuePair<string, object?>(TagNames.Model, model));

    public void CacheMiss(string model) => _cacheMisses.Add(1, new KeyValuePair<string, object?>(TagNames.Model, model));

    /// <summary>The Redis circuit breaker entered <paramref name="state"/> (open, half_open, closed).</summary>
    public void RedisStateChanged(string state) => _redisStates.Add(1, new KeyValuePair<string, object?>(TagNames.Outcome, state));

    /// <summary>A request refused before it queued (overload, an SLO no variant can meet).</summary>
    public void Shed(string model, string reason) =>
        _shed.Add(1, new KeyValuePair<string, object?>(TagNames.Model, model), new KeyValuePair<string, object?>(TagNames.Outcome, reason));

    /// <summary>A request given up after admission (its deadline passed, its caller cancelled).</summary>
    public void Dropped(string model, string reason) =>
        _dropped.Add(1, new KeyValuePair<string, object?>(TagNames.Model, model), new KeyValuePair<string, object?>(TagNames.Outcome, reason));

    public void Dispose()
    {
        ActivitySource.Dispose();
        _meter.Dispose();
    }

    private static TagList Tags(ModelTags tags) => new()
    {
        { TagNames.Model, tags.Model },
        { TagNames.Variant, tags.Variant },
        { TagNames.Device, tags.Device },
    };

    /// <summary>Bucket edges 1, 3, 10, 30 … from <paramref name="from"/> to <paramref name="to"/>.</summary>
    private static double[] Decades(double from, double to)
    {
        var edges = new List<double>();
        for (var d = from; d <= to * 1.0001; d *= 10)
        {
            edges.Add(d);
            if (d * 3 <= to)
            {
                edges.Add(d * 3);
            }
        }

        return [.. edges];
    }

    private IEnumerable<Measurement<T>> ObserveLoad<T>(Func<LoadReading, T> value)
        where T : struct
    {
        foreach (var reading in _load())
        {
            yield return new Measurement<T>(value(reading), new KeyValuePair<string, object?>(TagNames.Model, reading.Model));
        }
    }

    private IEnumerable<Measurement<double>> ObserveIdlePower()
    {
        foreach (var reading in _idlePower())
        {
            yield return new Measurement<double>(reading.Watts, new KeyValuePair<string, object?>(TagNames.Host, reading.Host), new KeyValuePair<string, object?>(TagNames.Device, reading.Device), new KeyValuePair<string, object?>(TagNames.Source, reading.Source));
        }
    }
}

/// <summary>Metric tag names: few, bounded, the same on every EffServe metric.</summary>
public static class TagNames
{
    public const string Model = "model";
    public const string Variant = "variant";
    public const string Device = "device";
    public const string Outcome = "outcome";

    /// <summary>effserve.slo.requests only: the request's SLO class (ms edge or <c>inf</c>).</summary>
    public const string SloClass = "slo_class";

    /// <summary>effserve.early_exit.samples only: the 1-based stage a sample left at.</summary>
    public const string Stage = "stage";

    /// <summary>Energy metrics only: <c>measured</c> or <c>modelled</c>.</summary>
    public const string Source = "source";

    /// <summary>
    /// effserve.power.idle only: the machine the idle power is that of (one value per process).
    /// Processes sharing a machine report the same figure under the same host: take the max per host, never the sum.
    /// </summary>
    public const string Host = "host";
}

/// <summary>Span names and attributes of the inference service (docs/observability.md draws the tree).</summary>
public static class SpanNames
{
    /// <summary>One request inside the service, child of the gRPC server span.</summary>
    public const string Infer = "effserve.infer";

    /// <summary>The wait for a run slot, child of the request.</summary>
    public const string Queue = "effserve.queue";

    /// <summary>One run of a variant (a batch), child of the request and linked to every request it served.</summary>
    public const string Run = "effserve.run";

    /// <summary>One stage of an early-exit run, child of the run.</summary>
    public const string Stage = "effserve.stage";
}

/// <summary>Span attribute names.</summary>
public static class SpanAttributes
{
    public const string Model = "effserve.model";
    public const string ModelVersion = "effserve.model_version";
    public const string Variant = "effserve.variant";
    public const string Device = "effserve.device";
    public const string BatchSize = "effserve.batch_size";
    public const string Requests = "effserve.requests";
    public const string ExitStage = "effserve.exit_stage";
    public const string ExitThreshold = "effserve.exit_threshold";
    public const string SloMs = "effserve.slo_ms";
    public const string BudgetLeftMs = "effserve.budget_left_ms";
    public const string SloMet = "effserve.slo_met";
    public const string Cache = "effserve.cache";
    public const string QueueDepth = "effserve.queue.depth";
    public const string CpuUs = "effserve.cpu_us";

    /// <summary>Microseconds from the request's decoding to its run's start, as the response's effserve.queue_us.</summary>
    public const string QueueUs = "effserve.queue_us";

    /// <summary>Microseconds of the run that answered the request, as the response's effserve.compute_us.</summary>
    public const string ComputeUs = "effserve.compute_us";
    public const string CpuClock = "effserve.cpu_clock";
    public const string StagesRun = "effserve.stages_run";
    public const string StageSamples = "effserve.stage_samples";
    public const string Stage = "effserve.stage";
    public const string SamplesIn = "effserve.stage.samples_in";
    public const string SamplesExited = "effserve.stage.samples_exited";
    public const string EnergyMj = "effserve.energy_mj";
    public const string EnergySource = "effserve.energy_source";
    public const string CostUsd = "effserve.cost_usd";
    public const string CarbonMg = "effserve.carbon_mg";
    public const string Outcome = "effserve.outcome";
}
