using System.Globalization;
using EffServe.LoadGen;

namespace EffServe.GatewayBench;

/// <summary>
/// The verb <c>overload</c>: the inference service serving one model and the gateway in front of it,
/// each a process of its own on loopback; the capacity measured through the gateway (closed loop,
/// the best of a few caller counts); then, for each factor, a seeded Poisson trace at factor ×
/// capacity sent open loop with a gRPC deadline per call, and what came back: goodput, answers by
/// status, refusals without a message, latency, each process's memory and CPU, and whether the
/// client kept its schedule.
/// </summary>
internal static class OverloadBench
{
    private static readonly CultureInfo s_inv = CultureInfo.InvariantCulture;

    public static async Task<int> RunAsync(BenchOptions options, IReadOnlyList<string> args, string root)
    {
        var loadStart = Machine.LoadAverage();
        var serviceDll = Prerequisites.ServiceDll(root, "EffServe.Inference", options.NoBuild);
        var gatewayDll = Prerequisites.ServiceDll(root, "EffServe.Gateway", options.NoBuild);
        var (requests, labels) = Samples.Load(root, options.Model, options.Seed, 256);

        Log.Line($"starting the inference service ({options.Model}) ...");
        var (service, serviceAddress) = await Stack.StartServiceAsync(root, serviceDll, options.Model).ConfigureAwait(false);
        var gateway = await Stack.StartGatewayAsync("gateway", root, gatewayDll, serviceAddress, options.Model, null).ConfigureAwait(false);
        var gatewayProcess = gateway.Process!;
        Log.Line($"inference service: pid {service.Pid}, {serviceAddress}; gateway: pid {gatewayProcess.Pid}, {gateway.Address}");

        using var arm = new Arm(gateway);
        var correct = 0;
        for (var s = 0; s < requests.Count; s++)
        {
            correct += Workload.PredictedClass(await arm.InferAsync(requests[s]).ConfigureAwait(false)) == labels[s] ? 1 : 0;
        }

        var accuracy = (double)correct / requests.Count;
        await arm.WarmUpAsync(requests, options.Quick ? 10 : 40).ConfigureAwait(false);
        Log.Line(string.Create(s_inv, $"{requests.Count} samples answered through the gateway (accuracy {accuracy:F3}); warm-up: {arm.WarmupWindows} windows, {(arm.WarmupConverged ? "converged" : "NOT converged")}, last median {arm.WarmupLastMedianUs:F0} µs"));

        // The load is spread over a few channels (each its own HTTP/2 connections), as many
        // independent clients would spread it; the capacity windows use the same channels.
        var clients = await arm.CallerClientsAsync(options.Connections, requests[0]).ConfigureAwait(false);
        var servicePids = new[] { service.Pid };
        var windows = new List<CapacityWindowResult>();
        double capacity;
        if (options.Capacity is { } given)
        {
            capacity = given;
            Log.Line(string.Create(s_inv, $"capacity given: {capacity:F0} answers/s"));
        }
        else
        {
            foreach (var callers in options.CapacityCallers)
            {
                var callerClients = Enumerable.Range(0, callers).Select(i => clients[i % clients.Count]).ToList();
                await arm.ThroughputAsync(callerClients, requests, 1.0, servicePids).ConfigureAwait(false);
                var window = await arm.ThroughputAsync(callerClients, requests, options.CapacitySeconds, servicePids).ConfigureAwait(false);
                windows.Add(new CapacityWindowResult(
                    callers,
                    Math.Round(window.Seconds, 2),
                    Math.Round(window.Rate, 1),
                    window.Requests,
                    window.Errors,
                    window.Requests == 0 ? double.NaN : Math.Round(window.ProxyCpu / window.Requests * 1e6, 1),
                    window.Requests == 0 ? double.NaN : Math.Round(window.ServiceCpu / window.Requests * 1e6, 1)));
                Log.Line(string.Create(s_inv, $"capacity, {callers} callers closed loop: {window.Rate:F0} answers/s over {window.Seconds:F1} s ({window.Errors} failed)"));
            }

            capacity = windows.Max(w => w.AnswersPerSecond);
            if (!(capacity > 0))
            {
                throw new BenchException($"The gateway answered no call in the capacity windows:{Environment.NewLine}{gatewayProcess.Tail}");
            }
        }

        var deadline = TimeSpan.FromMilliseconds(options.DeadlineMs);
        var steps = new List<OverloadStepResult>();
        foreach (var factor in options.Factors)
        {
            var rate = capacity * factor;
            var trace = Trace.Generate(options.Seed, rate, options.Seconds, [1.0], requests.Count);
            Log.Line(string.Create(s_inv, $"{factor:0.##}× capacity: {rate:F0} calls/s offered for {options.Seconds:0.#} s ({trace.Length} calls) ..."));
            var loadBefore = Machine.LoadAverage();
            var gatewayCpu = ProcStat.CpuSeconds([gatewayProcess.Pid]);
            var serviceCpu = ProcStat.CpuSeconds(servicePids);
            var memory = new MemoryWatch([gatewayProcess.Pid, service.Pid]);
            OpenLoopRecord record;
            try
            {
                record = await OpenLoop.RunAsync(clients, requests, trace, deadline).ConfigureAwait(false);
            }
            finally
            {
                await memory.DisposeAsync().ConfigureAwait(false);
            }

            var (gatewayStart, gatewayPeak) = memory.Of(0);
            var (serviceStart, servicePeak) = memory.Of(1);
            var step = OverloadReport.Step(
                factor,
                rate,
                options,
                capacity,
                record,
                new ProcessUse("gateway", gatewayProcess.Pid, Math.Round(gatewayStart, 1), Math.Round(gatewayPeak, 1), Math.Round(ProcStat.CpuSeconds([gatewayProcess.Pid]) - gatewayCpu, 2)),
                new ProcessUse("inference service", service.Pid, Math.Round(serviceStart, 1), Math.Round(servicePeak, 1), Math.Round(ProcStat.CpuSeconds(servicePids) - serviceCpu, 2)),
                loadBefore,
                Machine.LoadAverage());
            steps.Add(step);
            Log.Line(OverloadReport.StepLine(step));

            foreach (var process in new[] { gatewayProcess, service })
            {
                if (process.HasExited)
                {
                    throw new BenchException($"The {process.Name} ended during the {factor.ToString("0.##", s_inv)}× step:{Environment.NewLine}{process.Tail}");
                }
            }

            // Let what the servers still hold of the step drain before the next one starts.
            await Task.Delay(TimeSpan.FromSeconds(options.Quick ? 1 : 3)).ConfigureAwait(false);
        }

        var result = OverloadReport.Build(
            options,
            args,
            root,
            new OverloadWorkload($"{options.Model} (its default variant)", $"ModelInfer, batch 1, raw FP32 contents ({Samples.Shape(requests[0])}), model named only in the message", requests.Count, Math.Round(accuracy, 4)),
            new CapacityResult(options.Capacity is null ? "measured" : "given (--capacity)", Math.Round(capacity, 1), windows),
            steps,
            new ProcessInfo(gatewayProcess.Pid, ProcStat.Threads([gatewayProcess.Pid])),
            new ProcessInfo(service.Pid, ProcStat.Threads(servicePids)),
            loadStart,
            Machine.LoadAverage());

        var folder = options.Out ?? Path.Combine(root, "artifacts", "bench-overload");
        Directory.CreateDirectory(folder);
        var markdownPath = Path.Combine(folder, "results.md");
        var jsonPath = Path.Combine(folder, "results.json");
        await File.WriteAllTextAsync(markdownPath, OverloadReport.Markdown(result)).ConfigureAwait(false);
        await File.WriteAllTextAsync(jsonPath, OverloadReport.Json(result)).ConfigureAwait(false);
        await BenchText.WriteResultsAsync(options.Json, () => OverloadReport.Text(result), () => OverloadReport.Json(result)).ConfigureAwait(false);
        Log.Line($"wrote {markdownPath} and {jsonPath}");
        return 0;
    }
}
