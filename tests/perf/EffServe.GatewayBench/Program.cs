using System.Globalization;
using System.Runtime.InteropServices;
using EffServe.Contracts.Inference;
using EffServe.GatewayBench;
using EffServe.Testing;
using Grpc.Core;

// Issue 3's benchmark: the hop through EffServe's gateway against nginx grpc_pass (one worker), both
// in front of the same inference service, each a process of its own on loopback. Latency with one
// request in flight and throughput with N callers, arms interleaved in a seeded shuffled order each
// round, ratios taken inside each round (BENCHMARKING.md).
// With the verb `overload` (OverloadBench.cs): the gateway and the service under open-loop load at
// multiples of the capacity measured through the gateway.
if (args.Length > 0 && args[0] == TcpPump.Verb)
{
    return await TcpPump.RunAsync(args[1..]);
}

if (args.Length > 0 && args[0] == BareYarp.Verb)
{
    return await BareYarp.RunAsync(args[1..]);
}

var (parsed, exitCode) = BenchText.ParseOrExit(args, BenchOptions.Parse, o => o.Help, BenchOptions.Usage);
if (parsed is not { } options)
{
    return exitCode;
}

// Whatever ends this process (an exception, Ctrl-C, SIGTERM, SIGHUP) takes the services and nginx
// along, and the temporary folder with nginx's configuration.
DirectoryInfo? folder = null;
var cleanUpLock = new Lock();
void CleanUp()
{
    // A signal handler and ProcessExit may both get here, at once.
    lock (cleanUpLock)
    {
        ChildProcess.KillAll();
        try
        {
            folder?.Refresh();
            if (folder?.Exists == true)
            {
                folder.Delete(recursive: true);
            }
        }
        catch (IOException)
        {
            // a file still held open; the folder is in the temporary directory anyway
        }
    }
}

using var exitHooks = BenchText.OnExit(CleanUp);

var inv = CultureInfo.InvariantCulture;
var arms = new List<Arm>();
try
{
    var root = RepoPaths.Root;
    if (options.Verb == BenchVerb.Overload)
    {
        return await OverloadBench.RunAsync(options, args, root);
    }

    var loadStart = Machine.LoadAverage();
    var serviceDll = Prerequisites.ServiceDll(root, "EffServe.Inference", options.NoBuild);
    var gatewayDll = Prerequisites.ServiceDll(root, "EffServe.Gateway", options.NoBuild);
    var nginx = Prerequisites.Nginx();
    folder = Directory.CreateTempSubdirectory("effserve-gatewaybench-");

    Log.Line("starting the inference service ...");
    var (service, serviceAddress) = await Stack.StartServiceAsync(root, serviceDll, options.Model);
    Log.Line($"inference service ready at {serviceAddress} (pid {service.Pid}); starting the gateway and nginx ...");
    var doors = new List<Door> { new("direct", serviceAddress, null, null) };
    var gateway = await Stack.StartGatewayAsync("gateway", root, gatewayDll, serviceAddress, options.Model, null);
    doors.Add(gateway);
    if (options.HeaderArm)
    {
        doors.Add(gateway with { Name = "gateway+header", Headers = new Metadata { { "effserve-model", options.Model } } });
    }

    foreach (var variant in options.Variants)
    {
        doors.Add(await Stack.StartGatewayAsync($"gateway:{variant.Name}", root, gatewayDll, serviceAddress, options.Model, variant));
    }

    if (options.BareYarp)
    {
        doors.Add(await Stack.StartBareYarpAsync(root, serviceAddress, null));
    }

    foreach (var variant in options.YarpVariants)
    {
        doors.Add(await Stack.StartBareYarpAsync(root, serviceAddress, variant));
    }

    if (options.TcpPump)
    {
        doors.Add(await Stack.StartTcpPumpAsync(root, serviceAddress));
    }

    var nginxDoor = await Stack.StartNginxAsync(nginx, folder.FullName, serviceAddress);
    doors.Add(nginxDoor);
    foreach (var door in doors.Where(d => d.Process is not null))
    {
        Log.Line($"{door.Name}: {door.Address} (pids {string.Join(' ', door.Pids)})");
    }

    // The workload: batch 1, raw FP32 contents, the model named only inside the message.
    var (requests, labels) = Samples.Load(root, options.Model, options.Seed, 64);

    arms.AddRange(doors.Select(d => new Arm(d)));
    var direct = arms[0];
    var nginxArm = arms[^1];

    // Every arm answers every sample, and byte for byte as the service does directly.
    var identical = true;
    var correct = 0;
    for (var s = 0; s < requests.Count; s++)
    {
        var reference = await direct.InferAsync(requests[s]);
        var logits = MemoryMarshal.Cast<byte, float>(reference.RawOutputContents[0].Span);
        var best = 0;
        for (var c = 1; c < logits.Length; c++)
        {
            best = logits[c] > logits[best] ? c : best;
        }

        correct += best == labels[s] ? 1 : 0;
        foreach (var arm in arms.Skip(1))
        {
            var answer = await arm.InferAsync(requests[s]);
            identical &= answer.RawOutputContents.Count == 1 && answer.RawOutputContents[0].Span.SequenceEqual(reference.RawOutputContents[0].Span);
        }
    }

    if (!identical)
    {
        throw new BenchException("Some arm answered differently from the service itself; the paths are not equivalent.");
    }

    var accuracy = (double)correct / requests.Count;
    Log.Line(string.Create(inv, $"every arm answers the {requests.Count}-sample workload identically (accuracy {accuracy:F3}); warming up ..."));

    // Warm-up: latency windows until three agree (Arm.WarmUpAsync); then one throughput window per
    // arm and channel mode (which also opens the per-caller channels).
    var modes = options.Channels switch
    {
        ChannelMode.Shared => new[] { ChannelMode.Shared },
        ChannelMode.PerCaller => [ChannelMode.PerCaller],
        ChannelMode.None => [],
        _ => [ChannelMode.Shared, ChannelMode.PerCaller],
    };
    foreach (var arm in arms)
    {
        await arm.WarmUpAsync(requests);
        Log.Line(string.Create(inv, $"warm-up {arm.Name}: {arm.WarmupWindows} windows, {(arm.WarmupConverged ? "converged" : "NOT converged")}, last median {arm.WarmupLastMedianUs:F0} µs"));
    }

    var servicePids = new[] { service.Pid };
    foreach (var arm in arms)
    {
        foreach (var mode in modes)
        {
            var clients = await ClientsAsync(arm, mode, requests[0]);
            await arm.ThroughputAsync(clients, requests, Math.Min(1.0, options.Seconds), servicePids);
        }
    }

    // The measured rounds.
    var order = new Random(options.Seed);
    for (var round = 0; round < options.Rounds; round++)
    {
        foreach (var arm in arms.OrderBy(_ => order.Next()).ToList())
        {
            var latencies = await arm.LatencyAsync(requests, options.Requests, order.Next(requests.Count));
            arm.Latencies.AddRange(latencies);
            arm.RoundP50.Add(Stats.Percentile(latencies, 0.5));
            arm.RoundP99.Add(Stats.Percentile(latencies, 0.99));
        }

        foreach (var (arm, mode) in arms.SelectMany(a => modes.Select(m => (a, m))).OrderBy(_ => order.Next()).ToList())
        {
            var window = await arm.ThroughputAsync(await ClientsAsync(arm, mode, requests[0]), requests, options.Seconds, servicePids);
            arm.Windows[mode].Add(window);
            if (window.Errors > 0)
            {
                Log.Line($"warning: {arm.Name} ({mode}) had {window.Errors} failed calls in round {round + 1}");
            }

            if (window.Requests == 0)
            {
                throw new BenchException($"{arm.Name} answered no call in a throughput window: {arm.Door.Process?.Tail}");
            }
        }

        Log.Line($"round {round + 1}/{options.Rounds}: " + string.Join("; ", arms.Select(a =>
            string.Create(inv, $"{a.Name} p50 {a.RoundP50[^1]:F0} µs") + string.Concat(modes.Select(m => string.Create(inv, $", {a.Windows[m][^1].Rate:F0} req/s"))))));
    }

    var loadEnd = Machine.LoadAverage();
    var threads = doors.ToDictionary(d => d.Name, d => d.Process is null ? (int?)null : ProcStat.Threads(d.Pids));
    var workload = new WorkloadInfo(
        $"{options.Model} (its default variant)",
        $"ModelInfer, batch 1, raw FP32 contents ({Samples.Shape(requests[0])}), model named only in the message",
        requests.Count,
        accuracy,
        identical);
    var result = Report.Build(options, args, root, gatewayDll, arms, direct, nginxArm, modes, workload, loadStart, loadEnd, threads, ProcStat.Threads(servicePids), File.ReadAllText(Path.Combine(folder.FullName, "nginx.conf")));
    await BenchText.WriteResultsAsync(options.Json, () => Report.Markdown(result), () => Report.Json(result));

    return 0;
}
catch (BenchException e)
{
    await Console.Error.WriteLineAsync($"EffServe.GatewayBench: {e.Message}");
    return 1;
}
finally
{
    foreach (var arm in arms)
    {
        arm.Dispose();
    }

    CleanUp();
}

async Task<IReadOnlyList<GRPCInferenceService.GRPCInferenceServiceClient>> ClientsAsync(Arm arm, ChannelMode mode, ModelInferRequest warmup) =>
    mode == ChannelMode.Shared
        ? Enumerable.Repeat(arm.Client, options.Callers).ToList()
        : await arm.CallerClientsAsync(options.Callers, warmup);
