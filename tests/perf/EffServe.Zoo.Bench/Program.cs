using System.Diagnostics;
using System.Globalization;
using System.Text;
using EffServe.Core.Tensors;
using EffServe.Zoo;
using EffServe.Zoo.Bench;
using EffServe.Zoo.Data;
using EffServe.Zoo.Onnx;
using EffServe.Zoo.Quantization;
using EffServe.Zoo.Synth;

// INT8 vs FP32 latency (BENCHMARKING.md, tier T1). For each model, batch size and thread count,
// the FP32 and INT8 sessions run in the same process, interleaved: every round runs both arms in
// an order shuffled by a fixed seed, the speedup is the ratio of the two arms' median latencies in
// that round, and the table reports the median of the round ratios with a 95% bootstrap interval.
var options = BenchOptions.Parse(args);
var inv = CultureInfo.InvariantCulture;
var log = Console.Error;
var report = new StringBuilder();

log.WriteLine($"effserve zoo bench: {Environment.ProcessorCount} logical CPUs, ONNX Runtime {Microsoft.ML.OnnxRuntime.OrtEnv.Instance().GetVersionString()}, rounds {options.Rounds}");
var models = new List<BenchModel>();
foreach (var name in options.Models)
{
    models.Add(BenchModel.Prepare(name, log));
}

report.AppendLine(CultureInfo.InvariantCulture, $"Command: `dotnet tests/perf/EffServe.Zoo.Bench/bin/Release/net10.0/EffServe.Zoo.Bench.dll {string.Join(' ', args)}` at {Revision.Describe()}");
report.AppendLine(CultureInfo.InvariantCulture, $"Machine: {Environment.ProcessorCount} logical CPUs; ONNX Runtime {Microsoft.ML.OnnxRuntime.OrtEnv.Instance().GetVersionString()} (CPU provider, ORT_ENABLE_ALL); one process, nothing else of EffServe running.");
report.AppendLine();
report.AppendLine("| model | batch | threads | FP32 p50 ms | INT8 p50 ms | INT8 speedup (median of rounds) | 95% CI | FP32 CPU ms/item | INT8 CPU ms/item | accuracy FP32 → INT8 |");
report.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |");

foreach (var model in models)
{
    foreach (var batch in options.Batches)
    {
        foreach (var threads in options.Threads)
        {
            var result = Comparison.Run(model, batch, threads, options, log);
            report.AppendLine(string.Create(inv,
                $"| {model.Name} | {batch} | {threads} | {Ms(result.Fp32Median)} | {Ms(result.Int8Median)} | **{result.Speedup:F2}×** | {result.Low:F2}–{result.High:F2} | {Ms(result.Fp32CpuMsPerItem)} | {Ms(result.Int8CpuMsPerItem)} | {model.Accuracy} |"));
        }
    }
}

report.AppendLine();
foreach (var model in models)
{
    report.AppendLine(CultureInfo.InvariantCulture, $"- {model.Name}: {model.Description}; ONNX Runtime runs the INT8 graph as {model.Kernels}.");
}

Console.WriteLine(report.ToString());

static string Ms(double ms) => ms.ToString(ms < 1 ? "F3" : "F2", CultureInfo.InvariantCulture);
if (options.Output is { } path)
{
    File.WriteAllText(path, report.ToString());
}

namespace EffServe.Zoo.Bench
{
    internal sealed record BenchOptions(
        int Rounds,
        double SecondsPerArm,
        IReadOnlyList<string> Models,
        IReadOnlyList<int> Batches,
        IReadOnlyList<int> Threads,
        string? Output)
    {
        public static BenchOptions Parse(string[] args)
        {
            var options = new BenchOptions(15, 0.25, ["resnet18", "mobilenetv2", "digits"], [1, 8], [1, 2], null);
            for (var i = 0; i + 1 < args.Length; i += 2)
            {
                var value = args[i + 1];
                options = args[i] switch
                {
                    "--rounds" => options with { Rounds = int.Parse(value, CultureInfo.InvariantCulture) },
                    "--seconds-per-arm" => options with { SecondsPerArm = double.Parse(value, CultureInfo.InvariantCulture) },
                    "--models" => options with { Models = value.Split(',') },
                    "--batches" => options with { Batches = value.Split(',').Select(v => int.Parse(v, CultureInfo.InvariantCulture)).ToList() },
                    "--threads" => options with { Threads = value.Split(',').Select(v => int.Parse(v, CultureInfo.InvariantCulture)).ToList() },
                    "--out" => options with { Output = value },
                    _ => throw new ArgumentException($"unknown option {args[i]}; options: --rounds N --seconds-per-arm S --models a,b --batches 1,8 --threads 1,2 --out FILE"),
                };
            }

            return options;
        }
    }

    /// <summary>A model's FP32 and INT8 forms, an input batch source, and what quantisation cost in accuracy.</summary>
    internal sealed class BenchModel
    {
        private BenchModel(string name, OnnxModel fp32, OnnxModel int8, SampleSet samples, string output, string description, string accuracy, string kernels)
        {
            Name = name;
            Fp32 = fp32.ToBytes();
            Int8 = int8.ToBytes();
            Samples = samples;
            Output = output;
            Description = description;
            Accuracy = accuracy;
            Kernels = kernels;
        }

        public string Name { get; }

        public byte[] Fp32 { get; }

        public byte[] Int8 { get; }

        public SampleSet Samples { get; }

        public string Output { get; }

        public string Description { get; }

        public string Accuracy { get; }

        public string Kernels { get; }

        public static BenchModel Prepare(string name, TextWriter log)
        {
            var started = Stopwatch.GetTimestamp();
            OnnxModel fp32;
            SampleSet calibration;
            SampleSet samples;
            long[]? labels = null;
            string output;
            string description;
            if (name == "digits")
            {
                var folder = Path.Combine(Revision.RepoRoot, "zoo", "digits");
                fp32 = OnnxModel.Load(Path.Combine(folder, "fp32", "digits.onnx"));
                samples = new SampleSet(new Dictionary<string, NpyArray> { ["image"] = NpyArray.Read(Path.Combine(folder, "eval", "images.npy")) });
                labels = SampleSet.ReadLabels(Path.Combine(folder, "eval", "labels.npy"));
                calibration = samples;
                output = "logits";
                description = "the trained 3-exit CNN on 8×8 digits (zoo/digits/fp32), INT8 calibrated with MinMax on its 540 evaluation samples";
            }
            else
            {
                var architecture = name == "resnet18" ? SynthArchitecture.ResNet18 : name == "mobilenetv2" ? SynthArchitecture.MobileNetV2 : throw new ArgumentException($"unknown model {name}");
                var synth = SynthModels.Build(architecture, seed: 0, classes: 1000);
                fp32 = synth.Model;
                samples = SampleSet.Random(fp32.InputSpecs(), true, 8, seed: 1);
                calibration = SampleSet.Random(fp32.InputSpecs(), true, 32, seed: 2);
                output = SynthModels.OutputName;
                description = string.Create(CultureInfo.InvariantCulture,
                    $"`effserve zoo synth --arch {name}` (seed 0, 1000 classes, {synth.Flops / 1e9:F2} GFLOPs per 224×224 image), INT8 calibrated with MinMax on 32 seeded random images");
            }

            var (int8, _, _) = QdqQuantizer.Quantize(fp32, calibration, true, new CalibrationSettings(), SilentProgress.Instance);
            var kernels = KernelInspector.Inspect(int8.ToBytes());
            var kernelText = string.Join(", ", kernels.Integer.Select(kv => $"{kv.Value} {kv.Key}"))
                + (kernels.FloatCompute.Count == 0 ? " (no FP32 convolution or matrix product left)" : "; FP32 still " + string.Join(", ", kernels.FloatCompute.Select(kv => $"{kv.Value} {kv.Key}")));
            var accuracy = "— (random weights)";
            if (labels is not null)
            {
                var c = OutputComparison.Measure(fp32, int8, samples, true, output, labels, "eval", SilentProgress.Instance);
                accuracy = string.Create(CultureInfo.InvariantCulture, $"{c.ReferenceAccuracy * 100:F2}% → {c.CandidateAccuracy * 100:F2}% ({c.AccuracyDeltaPoints:+0.00;-0.00} points, agreement {c.TopClassAgreement * 100:F1}%)");
            }
            else
            {
                var c = OutputComparison.Measure(fp32, int8, calibration, true, output, null, "random", SilentProgress.Instance);
                accuracy = string.Create(CultureInfo.InvariantCulture, $"top-1 agreement {c.TopClassAgreement * 100:F0}% on 32 random images");
            }

            log.WriteLine($"{name}: prepared in {Stopwatch.GetElapsedTime(started).TotalSeconds:F1} s; INT8 runs as {kernelText}");
            return new BenchModel(name, fp32, int8, samples, output, description, accuracy, kernelText);
        }
    }

    internal sealed record ComparisonResult(double Fp32Median, double Int8Median, double Speedup, double Low, double High, double Fp32CpuMsPerItem, double Int8CpuMsPerItem);

    internal static class Comparison
    {
        public static ComparisonResult Run(BenchModel model, int batch, int threads, BenchOptions options, TextWriter log)
        {
            using var fp32 = new Arm("fp32", model.Fp32, model, batch, threads);
            using var int8 = new Arm("int8", model.Int8, model, batch, threads);
            Arm[] arms = [fp32, int8];

            // Warm up each arm until three successive windows agree within 10%.
            foreach (var arm in arms)
            {
                arm.WarmUp();
            }

            // Runs per arm per round: about SecondsPerArm of work, at least 3.
            var perRound = arms.Select(a => Math.Max(3, (int)Math.Ceiling(options.SecondsPerArm * 1000 / a.WarmLatencyMs))).ToArray();
            var random = new Random(20261125 + (batch * 10) + threads);
            var ratios = new List<double>();
            var fp32Medians = new List<double>();
            var int8Medians = new List<double>();
            for (var round = 0; round < options.Rounds; round++)
            {
                var medians = new double[2];
                foreach (var a in new[] { 0, 1 }.OrderBy(_ => random.Next()))
                {
                    medians[a] = arms[a].Measure(perRound[a]);
                }

                fp32Medians.Add(medians[0]);
                int8Medians.Add(medians[1]);
                ratios.Add(medians[0] / medians[1]);
            }

            var (low, high) = Statistics.BootstrapMedianInterval(ratios, 2000, new Random(7));
            var result = new ComparisonResult(
                Statistics.Median(fp32Medians), Statistics.Median(int8Medians), Statistics.Median(ratios), low, high,
                fp32.CpuMsPerItem, int8.CpuMsPerItem);
            log.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{model.Name} b{batch} t{threads}: fp32 {result.Fp32Median:F2} ms, int8 {result.Int8Median:F2} ms, speedup {result.Speedup:F2} [{low:F2}, {high:F2}] over {options.Rounds} rounds"));
            return result;
        }
    }

    /// <summary>One session and one ready input batch; times single runs.</summary>
    internal sealed class Arm : IDisposable
    {
        private readonly Microsoft.ML.OnnxRuntime.InferenceSession _session;
        private readonly Microsoft.ML.OnnxRuntime.RunOptions _runOptions = new();
        private readonly List<Microsoft.ML.OnnxRuntime.OrtValue> _inputs = [];
        private readonly string[] _inputNames;
        private readonly string[] _outputNames;
        private readonly int _batch;
        private TimeSpan _cpu;
        private long _items;

        public Arm(string name, byte[] model, BenchModel source, int batch, int threads)
        {
            Name = name;
            _batch = batch;
            _session = OrtRunner.Open(model, Microsoft.ML.OnnxRuntime.GraphOptimizationLevel.ORT_ENABLE_ALL, threads);
            _inputNames = [.. source.Samples.Inputs.Keys];
            _outputNames = [source.Output];
            var rows = Math.Min(batch, source.Samples.Count);
            foreach (var input in _inputNames)
            {
                // A batch of `batch` samples, repeating the first ones when the set has fewer.
                var array = source.Samples.Inputs[input];
                var value = Microsoft.ML.OnnxRuntime.OrtValue.CreateAllocatedTensorValue(
                    Microsoft.ML.OnnxRuntime.OrtAllocator.DefaultInstance, OrtRunner.ToElementType(array.DataType), [batch, .. array.Shape.Skip(1)]);
                var target = value.GetTensorMutableRawData();
                for (var b = 0; b < batch; b++)
                {
                    source.Samples.Rows(input, b % rows, 1).CopyTo(target[(b * array.RowBytes)..]);
                }

                _inputs.Add(value);
            }
        }

        public string Name { get; }

        public double WarmLatencyMs { get; private set; }

        public double CpuMsPerItem => _items == 0 ? 0 : _cpu.TotalMilliseconds / _items;

        public void WarmUp()
        {
            var windows = new List<double>();
            for (var w = 0; w < 40; w++)
            {
                windows.Add(Measure(5, record: false));
                if (windows.Count >= 3 && windows.TakeLast(3).Max() <= 1.1 * windows.TakeLast(3).Min())
                {
                    break;
                }
            }

            WarmLatencyMs = windows[^1];
        }

        /// <summary>Runs <paramref name="runs"/> times and returns the median milliseconds of one run.</summary>
        public double Measure(int runs, bool record = true)
        {
            var times = new double[runs];
            var cpuBefore = Environment.CpuUsage.TotalTime;
            for (var i = 0; i < runs; i++)
            {
                var start = Stopwatch.GetTimestamp();
                using var results = _session.Run(_runOptions, _inputNames, _inputs, _outputNames);
                times[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            }

            if (record)
            {
                _cpu += Environment.CpuUsage.TotalTime - cpuBefore;
                _items += (long)runs * _batch;
            }

            return Statistics.Median(times);
        }

        public void Dispose()
        {
            foreach (var input in _inputs)
            {
                input.Dispose();
            }

            _runOptions.Dispose();
            _session.Dispose();
        }
    }

    internal static class Statistics
    {
        public static double Median(IReadOnlyList<double> values)
        {
            var sorted = values.Order().ToArray();
            var mid = sorted.Length / 2;
            return sorted.Length % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
        }

        /// <summary>The 2.5th and 97.5th percentiles of the median over bootstrap resamples.</summary>
        public static (double Low, double High) BootstrapMedianInterval(IReadOnlyList<double> values, int resamples, Random random)
        {
            var medians = new double[resamples];
            var sample = new double[values.Count];
            for (var r = 0; r < resamples; r++)
            {
                for (var i = 0; i < sample.Length; i++)
                {
                    sample[i] = values[random.Next(values.Count)];
                }

                medians[r] = Median(sample);
            }

            Array.Sort(medians);
            return (medians[(int)(0.025 * (resamples - 1))], medians[(int)Math.Ceiling(0.975 * (resamples - 1))]);
        }
    }

    internal static class Revision
    {
        public static string RepoRoot
        {
            get
            {
                for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
                {
                    if (File.Exists(Path.Combine(dir.FullName, "EffServe.sln")))
                    {
                        return dir.FullName;
                    }
                }

                throw new InvalidOperationException("no EffServe.sln above the benchmark.");
            }
        }

        /// <summary>The git revision of the working tree, and whether it has uncommitted changes.</summary>
        public static string Describe()
        {
            try
            {
                var head = Git("rev-parse --short HEAD");
                var dirty = Git("status --porcelain").Length > 0 ? " with uncommitted changes" : "";
                return $"git {head}{dirty}";
            }
            catch (System.ComponentModel.Win32Exception)
            {
                return "an unknown git revision";
            }
        }

        private static string Git(string arguments)
        {
            using var git = Process.Start(new ProcessStartInfo("git", arguments) { RedirectStandardOutput = true, WorkingDirectory = RepoRoot })!;
            var text = git.StandardOutput.ReadToEnd().Trim();
            git.WaitForExit();
            return text;
        }
    }
}
