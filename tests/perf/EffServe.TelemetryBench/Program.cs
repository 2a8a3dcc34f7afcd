using System.Globalization;
using System.Runtime.InteropServices;
using EffServe.Contracts.Inference;
using EffServe.Core.Tensors;
using EffServe.GatewayBench;
using EffServe.Testing;
using EffServe.TelemetryBench;
using Google.Protobuf;

// What telemetry costs the inference service. The same service runs as several processes on
// loopback: telemetry off (EffServe:Telemetry:Enabled=false, the baseline); metrics for Prometheus
// with no collector (as shipped: no tracer at all); and, with a collector (OTLP to a sink in this
// process), traces sampled at 0 (metrics only), one request in ten and every request. Prometheus
// scrapes every telemetry-on process every 5 s. Per round, in a seeded shuffled order:
// throughput with 8 callers (closed loop), the service's CPU time per request over that window,
// and p50 latency with one request in flight; each arm's ratio to the baseline is taken inside the
// round and reported as the median of rounds with a 95% bootstrap interval (BENCHMARKING.md).
// The client shares the two cores with the services, so the CPU ratio is the steadier measure of
// what telemetry adds; throughput also moves with how the scheduler shares the cores.
//
//   EffServe.TelemetryBench [rounds=15] [throughput requests per arm and round=20000] [latency requests=400]
//                           [--model digits] [--ratios scrape,0,0.1,1] [--no-build]
//
// --ratios lists the trace sample ratio of each telemetry-on arm (0: metrics only, with a tracer
// that samples nothing; scrape: metrics for Prometheus and no collector, so no tracer at all, as
// `make run` and the Helm chart without telemetry.otlpEndpoint run); repeating one
// (0,0,1) measures how far two identical arms differ, the benchmark's own noise.
var inv = CultureInfo.InvariantCulture;
var modelAt = Array.IndexOf(args, "--model");
var model = modelAt >= 0 && modelAt + 1 < args.Length ? args[modelAt + 1] : "digits";
var ratiosAt = Array.IndexOf(args, "--ratios");
var ratios = ratiosAt >= 0 && ratiosAt + 1 < args.Length
    ? args[ratiosAt + 1].Split(',').Select(r => r == "scrape" ? double.NaN : double.Parse(r, inv)).ToArray()
    : [double.NaN, 0, 0.1, 1];
var numbers = args.Where((a, i) => !a.StartsWith("--", StringComparison.Ordinal) && (modelAt < 0 || i != modelAt + 1) && (ratiosAt < 0 || i != ratiosAt + 1)).Select(a => int.Parse(a, inv)).ToArray();
var rounds = numbers.Length > 0 ? numbers[0] : 15;
var throughputRequests = numbers.Length > 1 ? numbers[1] : 20000;
var latencyRequests = numbers.Length > 2 ? numbers[2] : 400;
var noBuild = args.Contains("--no-build");
const int Callers = 8;
const int Seed = 7;

AppDomain.CurrentDomain.ProcessExit += (_, _) => ChildProcess.KillAll();
Console.CancelKeyPress += (_, _) => ChildProcess.KillAll();
using var onTerm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, _ => ChildProcess.KillAll());

try
{
    var root = RepoPaths.Root;
    var dll = Prerequisites.ServiceDll(root, "EffServe.Inference", noBuild);
    var load = File.ReadAllText("/proc/loadavg").Split(' ').Take(3);
    await using var sink = await OtlpSink.StartAsync();

    var otlp = new Dictionary<string, string>
    {
        ["OTEL_EXPORTER_OTLP_ENDPOINT"] = sink.Address.ToString().TrimEnd('/'),
        ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf",
        ["OTEL_METRIC_EXPORT_INTERVAL"] = "10000",
    };
    var scrapePorts = new List<int>();
    string[] Telemetry(double ratio)
    {
        var port = Ports.Free();
        scrapePorts.Add(port);
        return [$"--EffServe:Telemetry:MetricsUrl=http://127.0.0.1:{port}", $"--EffServe:Telemetry:TraceSampleRatio={ratio.ToString(inv)}"];
    }

    static string ArmName(double ratio, int earlier)
    {
        var name = ratio switch
        {
            double.NaN => "metrics, no collector",
            0 => "metrics only",
            1 => "traced (every request)",
            _ => string.Create(CultureInfo.InvariantCulture, $"traced (1 in {1 / ratio:0.#})"),
        };
        return earlier == 0 ? name : $"{name} #{earlier + 1}";
    }

    var off = StartArm("telemetry off", dll, root, ["--EffServe:Telemetry:Enabled=false"], null);
    Arm[] arms =
    [
        off,
        .. ratios.Select((ratio, i) => StartArm(
            ArmName(ratio, ratios.Take(i).Count(r => r.Equals(ratio))),
            dll,
            root,
            double.IsNaN(ratio) ? Telemetry(0) : Telemetry(ratio),
            double.IsNaN(ratio) ? null : otlp)),
    ];
    await Task.WhenAll(arms.Select(a => a.WaitReadyAsync(TimeSpan.FromSeconds(90))));
    foreach (var arm in arms)
    {
        Log.Line($"{arm.Name}: {arm.Address} (pid {arm.Process.Pid})");
    }

    // Prometheus, roughly: a scrape of each telemetry-on service every 5 s while the benchmark runs.
    using var stopScraping = new CancellationTokenSource();
    long scrapes = 0;
    var scraper = Task.Run(async () =>
    {
        using var http = new HttpClient();
        while (!stopScraping.IsCancellationRequested)
        {
            try
            {
                foreach (var port in scrapePorts)
                {
                    using var reply = await http.GetAsync(new Uri($"http://127.0.0.1:{port}/metrics"), stopScraping.Token);
                    _ = await reply.Content.ReadAsByteArrayAsync(stopScraping.Token);
                    Interlocked.Increment(ref scrapes);
                }

                await Task.Delay(TimeSpan.FromSeconds(5), stopScraping.Token);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
    });

    // The workload: the model's default variant (fp32), batch 1, raw contents, 64 different images
    // of its evaluation set in turn.
    var images = NpyArray.Read(Path.Combine(root, "zoo", model, "eval", "images.npy"));
    var requests = Enumerable.Range(0, 64).Select(i => new ModelInferRequest
    {
        ModelName = model,
        Inputs = { new ModelInferRequest.Types.InferInputTensor { Name = "image", Datatype = "FP32", Shape = { 1, images.Shape.Skip(1) } } },
        RawInputContents = { ByteString.CopyFrom(images.Data, i * 7 % (int)images.Shape[0] * images.RowBytes, images.RowBytes) },
    }).ToList();

    // Warm up until three windows in a row agree within 10% for each arm (at most 20 windows).
    foreach (var arm in arms)
    {
        var windows = new List<double>();
        while (windows.Count < 20)
        {
            windows.Add(await arm.ThroughputAsync(requests, Callers, throughputRequests / 2));
            var last = windows.TakeLast(3).ToList();
            if (last.Count == 3 && last.Max() <= 1.1 * last.Min())
            {
                break;
            }
        }

        _ = await arm.LatenciesAsync(requests, latencyRequests / 2);
        Log.Line($"{arm.Name}: warm after {windows.Count} windows ({string.Join(", ", windows.Select(w => w.ToString("F0", inv)))} req/s)");
    }

    var random = new Random(Seed);
    var throughputRatios = arms.ToDictionary(a => a, _ => new List<double>());
    var p50Ratios = arms.ToDictionary(a => a, _ => new List<double>());
    var cpuRatios = arms.ToDictionary(a => a, _ => new List<double>());
    for (var round = 0; round < rounds; round++)
    {
        var order = arms.OrderBy(_ => random.Next()).ToArray();
        var rps = new Dictionary<Arm, double>();
        var p50 = new Dictionary<Arm, double>();
        var cpu = new Dictionary<Arm, double>();
        foreach (var arm in order)
        {
            var cpuBefore = ProcStat.CpuSeconds([arm.Process.Pid]);
            rps[arm] = await arm.ThroughputAsync(requests, Callers, throughputRequests);
            var cpuThroughput = ProcStat.CpuSeconds([arm.Process.Pid]);
            cpu[arm] = (cpuThroughput - cpuBefore) / throughputRequests;
            p50[arm] = Stats.Median(await arm.LatenciesAsync(requests, latencyRequests));
            arm.CpuSeconds += ProcStat.CpuSeconds([arm.Process.Pid]) - cpuBefore;
            arm.Requests += throughputRequests + latencyRequests;
            arm.Throughputs.Add(rps[arm]);
            arm.Medians.Add(p50[arm]);
        }

        foreach (var arm in arms)
        {
            throughputRatios[arm].Add(rps[arm] / rps[off]);
            p50Ratios[arm].Add(p50[arm] / p50[off]);
            cpuRatios[arm].Add(cpu[arm] / cpu[off]);
        }

        Log.Line($"round {round + 1}/{rounds}: " + string.Join("; ", arms.Select(a => string.Create(inv, $"{a.Name} {rps[a]:F0} req/s, p50 {p50[a]:F0} µs"))));
    }

    await stopScraping.CancelAsync();
    await scraper;
    await Task.Delay(TimeSpan.FromSeconds(6)); // let the last batch of spans reach the sink

    var revision = Prerequisites.FirstLine("git", "-C", root, "rev-parse", "--short", "HEAD");
    var uncommitted = Prerequisites.FirstLine("git", "-C", root, "status", "--porcelain", "--untracked-files=no") != "unknown"; // "unknown": no output
    var time = TimeProvider.System.GetUtcNow().ToString("yyyy-MM-dd HH:mm 'UTC'", inv);
    Console.WriteLine(string.Create(inv, $"Telemetry overhead: {model} fp32 batch 1, direct gRPC to the service, {rounds} rounds × ({throughputRequests} requests with {Callers} callers + {latencyRequests} with one in flight) per arm, arms in a shuffled order each round (seed {Seed})."));
    Console.WriteLine(string.Create(inv, $"Revision {revision}{(uncommitted ? " with uncommitted changes" : "")}, {time}; {Environment.ProcessorCount} cores ({string.Join(' ', load)} load average at the start); the client, {arms.Length} services and the OTLP sink share them."));
    Console.WriteLine();
    Console.WriteLine("| arm | throughput req/s | p50 µs | throughput ÷ off (95% CI) | service CPU per request ÷ off (95% CI) | p50 ÷ off (95% CI) | service CPU µs per request | energy mJ per request (modelled) |");
    Console.WriteLine("| --- | ---: | ---: | --- | --- | --- | ---: | ---: |");
    foreach (var arm in arms)
    {
        var t = Stats.MedianWithInterval(throughputRatios[arm], Seed);
        var c = Stats.MedianWithInterval(cpuRatios[arm], Seed + 2);
        var l = Stats.MedianWithInterval(p50Ratios[arm], Seed + 1);
        Console.WriteLine(string.Create(inv, $"| {arm.Name} | {Stats.Median(arm.Throughputs):F0} | {Stats.Median(arm.Medians):F0} | {t.Median:F3} ({t.Low:F3}–{t.High:F3}) | {c.Median:F3} ({c.Low:F3}–{c.High:F3}) | {l.Median:F3} ({l.Low:F3}–{l.High:F3}) | {arm.CpuSeconds * 1e6 / arm.Requests:F1} | {arm.EnergyMjPerRequest:F4} |"));
    }

    Console.WriteLine();
    foreach (var arm in arms.Skip(1))
    {
        var t = Stats.MedianWithInterval(throughputRatios[arm], Seed);
        var c = Stats.MedianWithInterval(cpuRatios[arm], Seed + 2);
        Console.WriteLine(string.Create(inv, $"- {arm.Name}: {(1 - t.Median) * 100:F1}% of the throughput lost to telemetry, service CPU per request {(c.Median - 1) * 100:+0.0;-0.0}% (medians of {t.Rounds} rounds; target ≤ 5%)"));
    }

    Console.WriteLine(string.Create(inv, $"- the telemetry-on services sent {sink.Exports} OTLP exports ({sink.Bytes / 1024.0:F0} KiB) to the sink and answered {Interlocked.Read(ref scrapes)} scrapes"));
    return 0;
}
catch (BenchException e)
{
    await Console.Error.WriteLineAsync(e.Message);
    return 1;
}
finally
{
    ChildProcess.KillAll();
}

Arm StartArm(string name, string dll, string root, string[] settings, IReadOnlyDictionary<string, string>? environment)
{
    var port = Ports.Free();
    var address = new Uri($"http://127.0.0.1:{port}");
    var process = ChildProcess.Start(name, "dotnet", [
        dll,
        "--contentRoot", Path.GetDirectoryName(dll)!,
        "--urls", address.ToString().TrimEnd('/'),
        $"--EffServe:Inference:ZooPath={Path.Combine(root, "zoo")}",
        $"--EffServe:Inference:Models:0={model}",
        "--Logging:LogLevel:Default=Warning",
        .. settings,
    ], root, environment);
    return new Arm(name, process, address);
}
