using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using EffServe.Contracts.Inference;
using EffServe.Core.Tensors;
using EffServe.Core.Zoo;
using EffServe.Onnx;
using EffServe.Testing;
using Google.Protobuf;
using Microsoft.Extensions.Logging.Abstractions;

// Foundation benchmark: one digits request at a time (closed loop, one in flight), through the
// real gRPC wire and in process, arms interleaved in shuffled order each round (BENCHMARKING.md).
// Then accuracy and executed stages per early-exit threshold over the whole evaluation set.
var rounds = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 15;
var perRound = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 200;
var inv = CultureInfo.InvariantCulture;

var zoo = RepoPaths.Zoo;
var definition = new ZooLoader(new OnnxGraphReader()).LoadModel(Path.Combine(zoo, "digits"));
var images = NpyArray.Read(definition.Evaluation!.InputFiles["image"]);
var labels = MemoryMarshal.Cast<byte, long>(NpyArray.Read(definition.Evaluation.LabelsFile).Data).ToArray();
var samples = labels.Length;

await using var server = await InferenceServer.StartAsync(zoo, new Dictionary<string, string?> { ["Logging:LogLevel:Default"] = "Warning" });
var client = new GRPCInferenceService.GRPCInferenceServiceClient(server.Channel);
using var runtime = ModelRuntime.Load(definition, new OnnxOptions(), NullLogger.Instance);

ModelInferRequest Request(int index, string variant, double? threshold)
{
    var request = new ModelInferRequest { ModelName = "digits" };
    request.Inputs.Add(new ModelInferRequest.Types.InferInputTensor { Name = "image", Datatype = "FP32", Shape = { 1, 1, 8, 8 } });
    request.RawInputContents.Add(ByteString.CopyFrom(images.Data, index * images.RowBytes, images.RowBytes));
    request.Parameters["effserve.variant"] = new InferParameter { StringParam = variant };
    if (threshold is { } t)
    {
        request.Parameters["effserve.exit_threshold"] = new InferParameter { DoubleParam = t };
    }

    return request;
}

NamedTensor Tensor(int index) => NamedTensor.FromBytes("image", DataType.Fp32, [1, 1, 8, 8], images.Data.AsMemory(index * images.RowBytes, images.RowBytes));

var arms = new (string Name, Func<int, Task> Call)[]
{
    ("wire fp32", i => client.ModelInferAsync(Request(i, "fp32", null)).ResponseAsync),
    ("wire early-exit@0.9", i => client.ModelInferAsync(Request(i, "early-exit", 0.9)).ResponseAsync),
    ("in-process fp32", i => { runtime.Run("fp32", [Tensor(i)], ["logits"], 1.0, default); return Task.CompletedTask; }),
    ("in-process early-exit@0.9", i => { runtime.Run("early-exit", [Tensor(i)], ["logits"], 0.9, default); return Task.CompletedTask; }),
};

// Warm up every arm until three successive windows agree within 10%.
foreach (var (name, call) in arms)
{
    var windows = new List<double>();
    for (var w = 0; w < 50 && (windows.Count < 3 || windows.TakeLast(3).Max() > 1.1 * windows.TakeLast(3).Min()); w++)
    {
        var start = Stopwatch.GetTimestamp();
        for (var i = 0; i < 100; i++)
        {
            await call(i % samples);
        }

        windows.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
    }
}

var latencies = arms.ToDictionary(a => a.Name, _ => new List<double>());
var roundP50 = arms.ToDictionary(a => a.Name, _ => new List<double>());
var random = new Random(20261125);
for (var round = 0; round < rounds; round++)
{
    foreach (var (name, call) in arms.OrderBy(_ => random.Next()))
    {
        var these = new List<double>(perRound);
        for (var i = 0; i < perRound; i++)
        {
            var start = Stopwatch.GetTimestamp();
            await call(random.Next(samples));
            these.Add(Stopwatch.GetElapsedTime(start).TotalMicroseconds);
        }

        latencies[name].AddRange(these);
        roundP50[name].Add(Percentile(these, 0.5));
    }
}

Console.WriteLine($"# digits, one request in flight, {rounds} rounds × {perRound} requests per arm, arms shuffled each round");
Console.WriteLine($"# machine: {Environment.ProcessorCount} cores, {RuntimeInformation.OSDescription}, {RuntimeInformation.FrameworkDescription}; client, server and ORT share the cores; ORT 1 intra-op thread");
Console.WriteLine();
Console.WriteLine("| arm | p50 µs | p90 µs | p99 µs | p50 ratio to wire fp32 (median of rounds, 95% CI) |");
Console.WriteLine("| --- | ---: | ---: | ---: | --- |");
foreach (var (name, _) in arms)
{
    var all = latencies[name];
    var ratios = roundP50[name].Zip(roundP50["wire fp32"], (a, b) => a / b).ToList();
    var (lo, hi) = BootstrapMedian(ratios, new Random(1));
    Console.WriteLine(string.Create(inv, $"| {name} | {Percentile(all, 0.5):F0} | {Percentile(all, 0.9):F0} | {Percentile(all, 0.99):F0} | {Percentile(ratios, 0.5):F2} ({lo:F2}–{hi:F2}) |"));
}

// Accuracy and executed stages per threshold, over the whole evaluation set through the wire.
Console.WriteLine();
Console.WriteLine($"# accuracy on the {samples}-sample held-out set, through the wire (batches of 60)");
Console.WriteLine();
Console.WriteLine("| variant | threshold | accuracy | mean executed stages | exits at stage 1 / 2 / 3 |");
Console.WriteLine("| --- | ---: | ---: | ---: | --- |");
foreach (var (variant, threshold) in new (string, double?)[] { ("fp32", null), ("early-exit", 0.0), ("early-exit", 0.5), ("early-exit", 0.8), ("early-exit", 0.9), ("early-exit", 0.95), ("early-exit", 0.99), ("early-exit", 0.999), ("early-exit", 1.0) })
{
    var correct = 0;
    var stageCounts = new int[4];
    for (var start = 0; start < samples; start += 60)
    {
        var count = Math.Min(60, samples - start);
        var request = new ModelInferRequest { ModelName = "digits" };
        request.Inputs.Add(new ModelInferRequest.Types.InferInputTensor { Name = "image", Datatype = "FP32", Shape = { count, 1, 8, 8 } });
        request.RawInputContents.Add(ByteString.CopyFrom(images.Data, start * images.RowBytes, count * images.RowBytes));
        request.Parameters["effserve.variant"] = new InferParameter { StringParam = variant };
        if (threshold is { } t)
        {
            request.Parameters["effserve.exit_threshold"] = new InferParameter { DoubleParam = t };
        }

        var response = await client.ModelInferAsync(request);
        var logits = MemoryMarshal.Cast<byte, float>(response.RawOutputContents[0].Span);
        for (var i = 0; i < count; i++)
        {
            var row = logits.Slice(i * 10, 10);
            var best = 0;
            for (var c = 1; c < 10; c++)
            {
                best = row[c] > row[best] ? c : best;
            }

            correct += best == labels[start + i] ? 1 : 0;
        }

        if (response.Parameters.TryGetValue("effserve.exit_stages", out var stages))
        {
            foreach (var s in stages.StringParam.Split(','))
            {
                stageCounts[int.Parse(s, inv)]++;
            }
        }
        else if (response.Parameters.TryGetValue("effserve.exit_stage", out var stage))
        {
            stageCounts[stage.Int64Param] += count;
        }
    }

    var executed = stageCounts.Sum() == 0 ? 3.0 : (double)(stageCounts[1] + (2 * stageCounts[2]) + (3 * stageCounts[3])) / samples;
    var split = stageCounts.Sum() == 0 ? "full model" : $"{stageCounts[1]} / {stageCounts[2]} / {stageCounts[3]}";
    Console.WriteLine(string.Create(inv, $"| {variant} | {(threshold is null ? "–" : threshold.Value.ToString("0.###", inv))} | {(double)correct / samples:F4} | {executed:F3} | {split} |"));
}

static double Percentile(List<double> values, double q)
{
    var sorted = values.Order().ToList();
    var index = Math.Clamp((int)Math.Ceiling(q * sorted.Count) - 1, 0, sorted.Count - 1);
    return sorted[index];
}

static (double Low, double High) BootstrapMedian(List<double> values, Random random)
{
    var medians = new List<double>();
    for (var b = 0; b < 2000; b++)
    {
        var sample = Enumerable.Range(0, values.Count).Select(_ => values[random.Next(values.Count)]).ToList();
        medians.Add(Percentile(sample, 0.5));
    }

    return (Percentile(medians, 0.025), Percentile(medians, 0.975));
}
