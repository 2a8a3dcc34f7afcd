using EffServe.Core.Tensors;
using EffServe.Core.Zoo;

namespace EffServe.Core.Tests.Support;

/// <summary>
/// An <see cref="IGraphReader"/> that answers from a table instead of opening ONNX files. A key is a
/// file name ("digits.onnx") or a trailing part of the path ("early-exit/stage1.onnx"); the longest
/// key that matches wins. Seeded with the real signatures of the digits model.
/// </summary>
internal sealed class FakeGraphReader : IGraphReader
{
    private readonly Dictionary<string, GraphSignature> _signatures = new(StringComparer.Ordinal);
    private readonly HashSet<string> _corrupt = new(StringComparer.Ordinal);
    private readonly List<string> _reads = [];

    public FakeGraphReader()
    {
        var image = Fp32("image", -1, 1, 8, 8);
        var logits = Fp32("logits", -1, 10);
        var exit1 = Fp32("exit1_logits", -1, 10);
        var exit2 = Fp32("exit2_logits", -1, 10);
        var features1 = Fp32("features1", -1, 16, 8, 8);
        var features2 = Fp32("features2", -1, 32, 4, 4);

        Set("fp32/digits.onnx", new GraphSignature([image], [logits, exit1, exit2]));
        Set("early-exit/stage1.onnx", new GraphSignature([image], [exit1, features1]));
        Set("early-exit/stage2.onnx", new GraphSignature([features1], [exit2, features2]));
        Set("early-exit/stage3.onnx", new GraphSignature([features2], [logits]));
    }

    /// <summary>Every path the loader asked for, in order.</summary>
    public IReadOnlyList<string> Reads => _reads;

    public static TensorSpec Fp32(string name, params long[] shape) => new(name, DataType.Fp32, shape);

    /// <summary>The signature registered under exactly <paramref name="key"/>.</summary>
    public GraphSignature this[string key] => _signatures[Normalise(key)];

    public void Set(string key, GraphSignature signature) => _signatures[Normalise(key)] = signature;

    /// <summary>Makes reads of a matching file fail as a file that is not an ONNX model would.</summary>
    public void MarkCorrupt(string key) => _corrupt.Add(Normalise(key));

    public GraphSignature Read(string path)
    {
        var normalised = Normalise(path);
        _reads.Add(normalised);
        if (_corrupt.Any(key => Matches(normalised, key)))
        {
            throw new InvalidDataException("protobuf parsing failed (fake).");
        }

        var match = _signatures.Keys
            .Where(key => Matches(normalised, key))
            .OrderByDescending(key => key.Length)
            .FirstOrDefault();
        return match is null
            ? throw new InvalidDataException($"the fake graph reader knows no signature for '{path}'.")
            : _signatures[match];
    }

    private static bool Matches(string path, string key) => path == key || path.EndsWith("/" + key, StringComparison.Ordinal);

    private static string Normalise(string path) => path.Replace('\\', '/');
}
