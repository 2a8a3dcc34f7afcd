using System.Globalization;
using EffServe.CacheBench;
using EffServe.Contracts.Inference;
using EffServe.GatewayBench;
using EffServe.Testing;
using Grpc.Core;

// The response cache and job benchmark: a real redis-server, two inference services sharing it
// (one with the in-process level, one Redis-only) and a gateway in front of each, all processes on
// loopback. Per round, in a seeded shuffled order: latency with one call in flight of a cache miss,
// an L1 hit, a Redis hit and the cache bypassed; throughput of N callers on a repeated-input
// workload with the cache used and bypassed; and one job against the same items sent online.
// Ratios are taken inside each round and reported as medians of rounds with 95% bootstrap
// intervals (BENCHMARKING.md).
var (parsed, exitCode) = BenchText.ParseOrExit(args, BenchOptions.Parse, o => o.Help, BenchOptions.Usage);
if (parsed is not { } options)
{
    return exitCode;
}

// Whatever ends this process (an exception, Ctrl-C, SIGTERM, SIGHUP) takes the services, the
// gateways and redis-server along.
RedisServer? redisServer = null;
var cleanUpLock = new Lock();
void CleanUp()
{
    lock (cleanUpLock)
    {
        ChildProcess.KillAll();
        redisServer?.DisposeAsync().AsTask().GetAwaiter().GetResult();
    }
}

using var exitHooks = BenchText.OnExit(CleanUp);

var inv = CultureInfo.InvariantCulture;
try
{
    var root = RepoPaths.Root;
    var loadStart = Machine.LoadAverage();
    var serviceDll = Prerequisites.ServiceDll(root, "EffServe.Inference", options.NoBuild);
    var gatewayDll = Prerequisites.ServiceDll(root, "EffServe.Gateway", options.NoBuild);
    var served = options.Models.Contains(options.JobModel) ? options.Models : [.. options.Models, options.JobModel];
    var workloads = served.ToDictionary(m => m, m => Workload.Load(root, m, options.Distinct, options.Seed), StringComparer.Ordinal);

    Log.Line($"load average {loadStart}; starting redis-server, two inference services ({string.Join(", ", served)}) and their gateways ...");
    string[] cachedSettings = options.JobInFlight is { } inFlight ? [string.Create(inv, $"--EffServe:Jobs:MaxInFlight={inFlight}")] : [];
    await using var stack = await CacheStack.StartAsync(root, serviceDll, gatewayDll, served, cachedSettings);
    redisServer = stack.Redis;
    var redisPid = stack.RedisPid;
    using var clients = new Clients([stack.Cached, stack.RedisOnly], options.Callers);
    Log.Line($"cached: gateway {stack.Cached.GatewayAddress} (pid {stack.Cached.Gateway.Pid}), service pid {stack.Cached.Service.Pid}; redis-only: gateway {stack.RedisOnly.GatewayAddress} (pid {stack.RedisOnly.Gateway.Pid}), service pid {stack.RedisOnly.Service.Pid}");

    // Fill both levels with the repeated inputs through the cached replica (first answers are
    // misses), then check that the Redis-only replica answers each of them from Redis and that a
    // cached answer is the answer the model gives with the cache bypassed.
    var checks = new Dictionary<string, Check>(StringComparer.Ordinal);
    foreach (var model in options.Models)
    {
        var workload = workloads[model];
        var cached = clients.Single(stack.Cached);
        var first = new List<string>();
        foreach (var request in workload.Repeated)
        {
            first.Add(Measure.Outcome(await CallWithRetryAsync(cached, request)));
        }

        await Task.Delay(300); // Redis fills do not hold up the response
        var fromRedis = 0;
        var identical = 0;
        for (var i = 0; i < workload.Repeated.Count; i++)
        {
            var remote = await CallWithRetryAsync(clients.Single(stack.RedisOnly), workload.Repeated[i]);
            fromRedis += Measure.Outcome(remote) == "hit" ? 1 : 0;
            var hit = await cached.ModelInferAsync(workload.Repeated[i]);
            var bypass = await cached.ModelInferAsync(workload.RepeatedBypass[i]);
            identical += hit.RawOutputContents.Count == bypass.RawOutputContents.Count
                && hit.RawOutputContents.Zip(bypass.RawOutputContents).All(p => p.First.Span.SequenceEqual(p.Second.Span)) ? 1 : 0;
        }

        checks[model] = new Check(workload.Repeated.Count, first.Count(o => o == "miss"), fromRedis, identical, workload.InputBytes);
        Log.Line($"{model}: {workload.Repeated.Count} repeated inputs cached ({checks[model].FirstMisses} first answers were misses); {fromRedis} answered from Redis by the Redis-only replica; {identical} cached answers identical to the uncached ones");
    }

    // The arms.
    var latencyArms = new List<LatencyArm>();
    var throughputArms = new List<ThroughputArm>();
    foreach (var model in options.Models)
    {
        var w = workloads[model];
        var n = w.Repeated.Count;
        latencyArms.Add(new LatencyArm(model, "off", "effserve.cache=bypass: no lookup, no fill (a model without caching takes this path)", stack.Cached, i => w.RepeatedBypass[i % n], "bypass"));
        latencyArms.Add(new LatencyArm(model, "miss", "an input never sent before: L1 and Redis looked up, the model run, both filled", stack.Cached, _ => w.Fresh(), "miss"));
        latencyArms.Add(new LatencyArm(model, "hit", "a cached input, answered from the in-process level", stack.Cached, i => w.Repeated[i % n], "hit"));
        latencyArms.Add(new LatencyArm(model, "hit-redis", "a cached input through the replica without an in-process level: answered from Redis", stack.RedisOnly, i => w.Repeated[i % n], "hit"));
        throughputArms.Add(new ThroughputArm(model, "off", $"{n} inputs repeated, effserve.cache=bypass", stack.Cached, w.RepeatedBypass, "bypass"));
        throughputArms.Add(new ThroughputArm(model, "on", $"{n} inputs repeated, cache used (every call a hit in the in-process level)", stack.Cached, w.Repeated, "hit"));
        throughputArms.Add(new ThroughputArm(model, "on-redis", $"{n} inputs repeated, through the replica without an in-process level (every call a Redis hit)", stack.RedisOnly, w.Repeated, "hit"));
    }

    var jobWorkload = workloads[options.JobModel];
    var jobItems = Enumerable.Range(0, options.JobItems).Select(i => jobWorkload.Request(i % jobWorkload.Rows, Workload.CacheMode.Use)).ToList();
    var onlineItems = Enumerable.Range(0, options.JobItems).Select(i => jobWorkload.Request(i % jobWorkload.Rows, Workload.CacheMode.Bypass)).ToList();

    // Warm-up: windows of calls until the medians of three in a row agree within 10% (at most 15
    // windows); one throughput window per arm; one small job and the same items online.
    foreach (var arm in latencyArms)
    {
        var windows = new List<double>();
        var client = clients.Single(arm.Replica);
        while (windows.Count < 15 && (windows.Count < 3 || windows.TakeLast(3).Max() > 1.1 * windows.TakeLast(3).Min()))
        {
            var offset = windows.Count * options.WarmupCalls;
            var (latencies, _, _) = await Measure.SeriesAsync(client, i => arm.Next(offset + i), options.WarmupCalls, arm.Expected, arm.Replica, redisPid);
            windows.Add(Stats.Median(latencies));
        }

        arm.WarmupWindows = windows.Count;
        arm.WarmupConverged = windows.Count >= 3 && windows.TakeLast(3).Max() <= 1.1 * windows.TakeLast(3).Min();
        Log.Line(string.Create(inv, $"warm-up {arm.Name}: {windows.Count} windows, {(arm.WarmupConverged ? "converged" : "NOT converged")}, last median {windows[^1]:F0} µs"));
    }

    foreach (var arm in throughputArms)
    {
        var window = await Measure.ClosedLoopAsync(clients.Callers(arm.Replica), arm.Requests, Math.Min(1.0, options.Seconds), arm.Expected, arm.Replica, redisPid);
        Log.Line(string.Create(inv, $"warm-up {arm.Name}: {window.Rate:F0} req/s"));
    }

    var warmItems = Math.Min(100, options.JobItems);
    var warmJob = await JobRun.RunAsync(clients.Jobs(stack.Cached), options.JobModel, jobItems.GetRange(0, warmItems), stack.Cached, redisPid);
    var warmOnline = await Measure.OnlineBatchAsync(clients.Callers(stack.Cached), onlineItems.GetRange(0, warmItems), stack.Cached, redisPid);
    Log.Line(string.Create(inv, $"warm-up jobs: {warmItems} items as a job {warmJob.Window.Rate:F0} items/s, online {warmOnline.Rate:F0} items/s"));

    // The measured rounds; the job rounds go with the first rounds.
    var order = new Random(options.Seed);
    var jobs = new List<JobOutcome>();
    var online = new List<Window>();
    for (var round = 0; round < Math.Max(options.Rounds, options.JobRounds); round++)
    {
        var line = new List<string>();
        if (round < options.Rounds)
        {
            foreach (var arm in latencyArms.OrderBy(_ => order.Next()).ToList())
            {
                var offset = order.Next(1 << 20);
                var (latencies, unexpected, cpu) = await Measure.SeriesAsync(clients.Single(arm.Replica), i => arm.Next(offset + i), options.Requests, arm.Expected, arm.Replica, redisPid);
                arm.Latencies.AddRange(latencies);
                arm.RoundP50.Add(Stats.Percentile(latencies, 0.5));
                arm.RoundP99.Add(Stats.Percentile(latencies, 0.99));
                arm.Unexpected += unexpected;
                arm.Cpu += cpu;
            }

            foreach (var arm in throughputArms.OrderBy(_ => order.Next()).ToList())
            {
                var window = await Measure.ClosedLoopAsync(clients.Callers(arm.Replica), arm.Requests, options.Seconds, arm.Expected, arm.Replica, redisPid);
                if (window.Calls == 0)
                {
                    throw new BenchException($"{arm.Name} answered no call in a throughput window: {arm.Replica.Gateway.Tail}{Environment.NewLine}{arm.Replica.Service.Tail}");
                }

                arm.Windows.Add(window);
            }

            line.AddRange(latencyArms.Select(a => string.Create(inv, $"{a.Name} p50 {a.RoundP50[^1]:F0} µs")));
            line.AddRange(throughputArms.Select(a => string.Create(inv, $"{a.Name} {a.Windows[^1].Rate:F0} req/s")));
        }

        if (round < options.JobRounds)
        {
            var jobFirst = order.Next(2) == 0;
            for (var k = 0; k < 2; k++)
            {
                if ((k == 0) == jobFirst)
                {
                    var outcome = await JobRun.RunAsync(clients.Jobs(stack.Cached), options.JobModel, jobItems, stack.Cached, redisPid);
                    if (outcome.Missing > 0 || outcome.Window.Errors > 0)
                    {
                        Log.Line($"warning: job round {round + 1}: {outcome.Missing} items without a result, {outcome.Window.Errors} failed");
                    }

                    jobs.Add(outcome);
                }
                else
                {
                    online.Add(await Measure.OnlineBatchAsync(clients.Callers(stack.Cached), onlineItems, stack.Cached, redisPid));
                }
            }

            line.Add(string.Create(inv, $"job {jobs[^1].Window.Rate:F0} items/s, online {online[^1].Rate:F0} items/s"));
        }

        Log.Line($"round {round + 1}: {string.Join("; ", line)}");
    }

    var loadEnd = Machine.LoadAverage();
    var result = Report.Build(options, args, root, serviceDll, cachedSettings, loadStart, loadEnd, checks, latencyArms, throughputArms, jobs, online, jobWorkload.InputBytes);
    await BenchText.WriteResultsAsync(options.Json, () => Report.Markdown(result), () => Report.Json(result));

    return 0;
}
catch (BenchException e)
{
    await Console.Error.WriteLineAsync($"EffServe.CacheBench: {e.Message}");
    return 1;
}
catch (RpcException e)
{
    await Console.Error.WriteLineAsync($"EffServe.CacheBench: a call failed: {e.StatusCode}: {e.Status.Detail}");
    return 1;
}
finally
{
    CleanUp();
}

// The gateway routes a model once its health check has seen the service: retry briefly at the start.
static async Task<ModelInferResponse> CallWithRetryAsync(GRPCInferenceService.GRPCInferenceServiceClient client, ModelInferRequest request)
{
    for (var attempt = 0; ; attempt++)
    {
        try
        {
            return await client.ModelInferAsync(request);
        }
        catch (RpcException e) when (e.StatusCode == StatusCode.Unavailable && attempt < 100)
        {
            await Task.Delay(200);
        }
    }
}
