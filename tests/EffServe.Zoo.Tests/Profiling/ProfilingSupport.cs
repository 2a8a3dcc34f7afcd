using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using EffServe.Core.Tensors;
using EffServe.Core.Zoo;
using EffServe.Testing;
using EffServe.Zoo.Profiling;
using EffServe.Zoo.Tests.Support;
using Microsoft.ML.OnnxRuntime;

namespace EffServe.Zoo.Tests.Profiling;

/// <summary>A clock that always reads the same instant.</summary>
internal sealed class FixedClock(DateTimeOffset now) : TimeProvider
{
    public override DateTimeOffset GetUtcNow() => now;
}

/// <summary>A graph reader that refuses every file, so that loading a manifest fails.</summary>
internal sealed class RefusingGraphReader : IGraphReader
{
    public GraphSignature Read(string path) => throw new InvalidDataException("refused by the test.");
}

/// <summary>Copies of zoo model folders in a temporary zoo, deleted on dispose; the committed zoo is never touched.</summary>
internal sealed class ZooCopy : IDisposable
{
    private readonly TempFolder _folder = new();

    public ZooCopy(params string[] modelFolders)
    {
        foreach (var source in modelFolders)
        {
            EffServe.Testing.TrainedModels.CopyAsTrained(source, System.IO.Path.Combine(_folder.Path, System.IO.Path.GetFileName(source)));
        }
    }

    public string Path => _folder.Path;

    public string Manifest(string model) => System.IO.Path.Combine(_folder.Path, model, ZooLoader.ManifestFileName);

    public IReadOnlyList<string> Listing() => _folder.Listing();

    public void Dispose() => _folder.Dispose();
}

internal static partial class Profiles
{
    public static readonly DateTimeOffset MeasuredAt = new(2026, 11, 25, 18, 0, 0, TimeSpan.Zero);

    public const string MeasuredAtText = "2026-11-25T18:00:00Z";

    /// <summary>As little measuring as still exercises every path: tests check structure, never speed.</summary>
    public static MeasurementSettings Quick { get; } = new()
    {
        WarmupWindow = TimeSpan.FromMilliseconds(1),
        MinWindowRuns = 1,
        MaxWarmupWindows = 3,
        MinRuns = 3,
        MinTime = TimeSpan.Zero,
        MaxSingleSamples = 20,
        ThresholdRounds = 1,
    };

    public static string DigitsFolder => System.IO.Path.Combine(RepoPaths.Zoo, "digits");

    public static string AddFolder => System.IO.Path.Combine(RepoPaths.FixtureZoo, "add");

    public static ZooProfiler Profiler() => new(new FixedClock(MeasuredAt));

    /// <summary>The manifest text without its profile blocks: what must stay as it was.</summary>
    public static string WithoutProfiles(string manifest)
    {
        var kept = new List<string>();
        var profileIndent = -1;
        foreach (var line in manifest.Split('\n'))
        {
            var indent = line.Length - line.TrimStart().Length;
            if (profileIndent >= 0 && line.Trim().Length > 0 && indent > profileIndent)
            {
                continue;
            }

            profileIndent = ProfileKey().IsMatch(line) ? indent : -1;
            if (profileIndent < 0)
            {
                kept.Add(line);
            }
        }

        return string.Join('\n', kept);
    }

    /// <summary>
    /// Top-1 correct answers of one ONNX graph over the whole digits evaluation set, run in one
    /// batch straight through ONNX Runtime: a computation independent of the profiler.
    /// </summary>
    public static int CountCorrect(string onnxPath, string output)
    {
        var images = NpyArray.Read(System.IO.Path.Combine(DigitsFolder, "eval", "images.npy"));
        var labelArray = NpyArray.Read(System.IO.Path.Combine(DigitsFolder, "eval", "labels.npy"));
        Assert.Equal(DataType.Int64, labelArray.DataType);
        var labels = MemoryMarshal.Cast<byte, long>(labelArray.Data.AsSpan()).ToArray();
        var pixels = MemoryMarshal.Cast<byte, float>(images.Data.AsSpan()).ToArray();

        using var session = new InferenceSession(onnxPath);
        using var input = OrtValue.CreateTensorValueFromMemory(pixels, images.Shape.ToArray());
        using var runOptions = new RunOptions();
        using var results = session.Run(runOptions, [session.InputNames[0]], [input], [output]);
        var scores = results[0].GetTensorDataAsSpan<float>();
        var classes = scores.Length / labels.Length;
        var correct = 0;
        for (var s = 0; s < labels.Length; s++)
        {
            var row = scores.Slice(s * classes, classes);
            var best = 0;
            for (var c = 1; c < classes; c++)
            {
                if (row[c] > row[best])
                {
                    best = c;
                }
            }

            correct += best == labels[s] ? 1 : 0;
        }

        return correct;
    }

    [GeneratedRegex(@"^\s*profile:\s*$")]
    private static partial Regex ProfileKey();
}
