using System.Buffers.Binary;
using EffServe.Contracts.Inference;
using EffServe.Core.Protocol;
using EffServe.Core.Tensors;
using EffServe.GatewayBench;
using Google.Protobuf;

namespace EffServe.CacheBench;

/// <summary>
/// The requests of one model: a seeded sample of its evaluation images as ModelInfer calls (batch
/// 1, raw FP32 contents, input "image"), and an endless supply of inputs never sent before.
/// </summary>
internal sealed class Workload
{
    private const float Step = 1f / (1 << 20);

    private readonly NpyArray _images;
    private readonly long[] _shape;
    private long _fresh;

    private Workload(string model, NpyArray images, IReadOnlyList<int> sample)
    {
        Model = model;
        _images = images;
        _shape = [1, .. images.Shape.Skip(1)];
        Sample = sample;
        Repeated = [.. sample.Select(i => Request(i, CacheMode.Use))];
        RepeatedBypass = [.. sample.Select(i => Request(i, CacheMode.Bypass))];
    }

    /// <summary>How a request asks the cache (the <c>effserve.cache</c> parameter).</summary>
    public enum CacheMode
    {
        Use,
        Bypass,
    }

    public string Model { get; }

    /// <summary>Evaluation rows in the sample, in order.</summary>
    public IReadOnlyList<int> Sample { get; }

    /// <summary>The sample's requests with the cache used (the default): after the first pass, every one is a hit.</summary>
    public IReadOnlyList<ModelInferRequest> Repeated { get; }

    /// <summary>The same requests with <c>effserve.cache=bypass</c>: the cache neither read nor written, as for a model without caching.</summary>
    public IReadOnlyList<ModelInferRequest> RepeatedBypass { get; }

    /// <summary>Evaluation rows of the model.</summary>
    public int Rows => (int)_images.Shape[0];

    /// <summary>Bytes of one input.</summary>
    public int InputBytes => _images.RowBytes;

    public static Workload Load(string root, string model, int distinct, int seed)
    {
        var path = Path.Combine(root, "zoo", model, "eval", "images.npy");
        if (!File.Exists(path))
        {
            throw new BenchException($"{path} is missing: the benchmark sends a model's evaluation images, and '{model}' has none in the zoo.");
        }

        var images = NpyArray.Read(path);
        if (images.DataType != DataType.Fp32 || images.Shape.Count < 2)
        {
            throw new BenchException($"{path} holds {images.DataType} of shape [{string.Join(", ", images.Shape)}]; the benchmark sends FP32 rows.");
        }

        var random = new Random(seed);
        var rows = (int)images.Shape[0];
        var sample = Enumerable.Range(0, rows).OrderBy(_ => random.Next()).Take(Math.Min(distinct, rows)).ToArray();
        return new Workload(model, images, sample);
    }

    /// <summary>Evaluation row <paramref name="row"/> as a request.</summary>
    public ModelInferRequest Request(int row, CacheMode mode)
    {
        var request = Empty(mode);
        request.RawInputContents.Add(ByteString.CopyFrom(_images.Data, row * _images.RowBytes, _images.RowBytes));
        return request;
    }

    /// <summary>
    /// An input never sent before in this run (so a miss in both levels): a sample row with a
    /// counter added to its first three elements, 12 bits each, in steps of 2^-20 (at most 0.004 on
    /// pixels in [0, 1]; steps far above a float's resolution there, so no two inputs coincide).
    /// The answer is a real inference on a near-copy of an evaluation image.
    /// </summary>
    public ModelInferRequest Fresh(CacheMode mode = CacheMode.Use)
    {
        var n = Interlocked.Increment(ref _fresh);
        var row = Sample[(int)(n % Sample.Count)];
        var bytes = _images.Data.AsSpan(row * _images.RowBytes, _images.RowBytes).ToArray();
        for (var k = 0; k < 3; k++)
        {
            var at = bytes.AsSpan(k * sizeof(float), sizeof(float));
            var part = ((n >> (12 * k)) & 0xFFF) + 1;
            BinaryPrimitives.WriteSingleLittleEndian(at, BinaryPrimitives.ReadSingleLittleEndian(at) + (part * Step));
        }

        var request = Empty(mode);
        request.RawInputContents.Add(ByteString.CopyFrom(bytes));
        return request;
    }

    private ModelInferRequest Empty(CacheMode mode)
    {
        var request = new ModelInferRequest { ModelName = Model };
        request.Inputs.Add(new ModelInferRequest.Types.InferInputTensor { Name = "image", Datatype = "FP32", Shape = { _shape } });
        if (mode == CacheMode.Bypass)
        {
            request.Parameters[ParameterNames.Cache] = new InferParameter { StringParam = "bypass" };
        }

        return request;
    }
}
