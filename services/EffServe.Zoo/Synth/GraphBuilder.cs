using EffServe.Zoo.Data;
using EffServe.Zoo.Onnx;
using EffServe.Zoo.OnnxFormat;

namespace EffServe.Zoo.Synth;

/// <summary>A feature map flowing through a network being built: its tensor name and its size.</summary>
internal sealed record FeatureMap(string Name, int Channels, int Height, int Width);

/// <summary>
/// Builds a convolutional classifier graph layer by layer with seeded random weights, keeping
/// track of feature-map sizes, parameters and multiply-accumulates as it goes. Weights are drawn
/// He-style: normal with variance gain / fan-in, so activations keep a steady scale through ReLU
/// layers instead of exploding or vanishing.
/// </summary>
internal sealed class GraphBuilder
{
    public const string BatchSymbol = "batch";

    private readonly GraphProto _graph;
    private readonly Random _random;
    private readonly Dictionary<string, int> _names = new(StringComparer.Ordinal);
    private string? _clipMin;
    private string? _clipMax;

    public GraphBuilder(string name, int seed)
    {
        _graph = new GraphProto { Name = name };
        _random = new Random(seed);
    }

    public long MultiplyAccumulates { get; private set; }

    public long Parameters { get; private set; }

    public FeatureMap Input(string name, int channels, int height, int width)
    {
        _graph.Input.Add(new ValueInfoProto { Name = name, Type = ElementTypes.TensorType(ElementTypes.Float, [-1, channels, height, width], BatchSymbol) });
        return new FeatureMap(name, channels, height, width);
    }

    /// <summary>
    /// A convolution with bias (a folded batch norm), padding kernel / 2 on every side. The
    /// weights' variance is <paramref name="gain"/> / fan-in: 2 before a ReLU (He), 1 for a linear
    /// layer, less to damp a residual branch.
    /// </summary>
    public FeatureMap Conv(string scope, FeatureMap x, int channels, int kernel, int stride = 1, int group = 1, double gain = 2.0)
    {
        var pad = kernel / 2;
        var height = (x.Height + (2 * pad) - kernel) / stride + 1;
        var width = (x.Width + (2 * pad) - kernel) / stride + 1;
        var perGroup = x.Channels / group;
        var fanIn = perGroup * kernel * kernel;
        var weight = Initializer(scope + ".weight", [channels, perGroup, kernel, kernel], Math.Sqrt(gain / fanIn));
        var bias = Initializer(scope + ".bias", [channels], 0.01);
        var output = Name(scope + "/Conv_output");
        _graph.Node.Add(Nodes.Create("Conv", Name(scope + "/Conv"), [x.Name, weight, bias], [output],
            Nodes.Ints("dilations", 1, 1),
            Nodes.Int("group", group),
            Nodes.Ints("kernel_shape", kernel, kernel),
            Nodes.Ints("pads", pad, pad, pad, pad),
            Nodes.Ints("strides", stride, stride)));
        MultiplyAccumulates += (long)height * width * channels * fanIn;
        return new FeatureMap(output, channels, height, width);
    }

    public FeatureMap Relu(string scope, FeatureMap x)
    {
        var output = Name(scope + "/Relu_output");
        _graph.Node.Add(Nodes.Create("Relu", Name(scope + "/Relu"), [x.Name], [output]));
        return x with { Name = output };
    }

    /// <summary>ReLU6 as ONNX writes it: Clip between 0 and 6.</summary>
    public FeatureMap Relu6(string scope, FeatureMap x)
    {
        if (_clipMin is null)
        {
            _clipMin = Name("relu6.min");
            _clipMax = Name("relu6.max");
            _graph.Initializer.Add(TensorData.Scalar(_clipMin, 0f));
            _graph.Initializer.Add(TensorData.Scalar(_clipMax, 6f));
        }

        var output = Name(scope + "/Clip_output");
        _graph.Node.Add(Nodes.Create("Clip", Name(scope + "/Clip"), [x.Name, _clipMin, _clipMax!], [output]));
        return x with { Name = output };
    }

    public FeatureMap Add(string scope, FeatureMap a, FeatureMap b)
    {
        var output = Name(scope + "/Add_output");
        _graph.Node.Add(Nodes.Create("Add", Name(scope + "/Add"), [a.Name, b.Name], [output]));
        return a with { Name = output };
    }

    public FeatureMap MaxPool(string scope, FeatureMap x, int kernel, int stride, int pad)
    {
        var output = Name(scope + "/MaxPool_output");
        _graph.Node.Add(Nodes.Create("MaxPool", Name(scope + "/MaxPool"), [x.Name], [output],
            Nodes.Int("ceil_mode", 0),
            Nodes.Ints("kernel_shape", kernel, kernel),
            Nodes.Ints("pads", pad, pad, pad, pad),
            Nodes.Ints("strides", stride, stride)));
        return new FeatureMap(output, x.Channels, (x.Height + (2 * pad) - kernel) / stride + 1, (x.Width + (2 * pad) - kernel) / stride + 1);
    }

    /// <summary>Global average pooling then flattening: [batch, C, H, W] to [batch, C].</summary>
    public FeatureMap PoolAndFlatten(string scope, FeatureMap x)
    {
        var pooled = Name(scope + "/GlobalAveragePool_output");
        var flat = Name(scope + "/Flatten_output");
        _graph.Node.Add(Nodes.Create("GlobalAveragePool", Name(scope + "/GlobalAveragePool"), [x.Name], [pooled]));
        _graph.Node.Add(Nodes.Create("Flatten", Name(scope + "/Flatten"), [pooled], [flat], Nodes.Int("axis", 1)));
        return new FeatureMap(flat, x.Channels, 1, 1);
    }

    /// <summary>A fully connected layer, weights stored [out, in] as PyTorch exports them (transB = 1).</summary>
    public FeatureMap Linear(string scope, FeatureMap x, int outputs, string? outputName = null)
    {
        var weight = Initializer(scope + ".weight", [outputs, x.Channels], Math.Sqrt(1.0 / x.Channels));
        var bias = Initializer(scope + ".bias", [outputs], 0.01);
        var output = outputName ?? Name(scope + "/Gemm_output");
        _graph.Node.Add(Nodes.Create("Gemm", Name(scope + "/Gemm"), [x.Name, weight, bias], [output],
            Nodes.Float("alpha", 1f), Nodes.Float("beta", 1f), Nodes.Int("transB", 1)));
        MultiplyAccumulates += (long)x.Channels * outputs;
        return new FeatureMap(output, outputs, 1, 1);
    }

    public ModelProto Build(FeatureMap logits, string docString)
    {
        _graph.Output.Add(new ValueInfoProto { Name = logits.Name, Type = ElementTypes.TensorType(ElementTypes.Float, [-1, logits.Channels], BatchSymbol) });
        var model = new ModelProto
        {
            IrVersion = 8,
            ProducerName = "effserve-zoo-synth",
            ProducerVersion = "1",
            DocString = docString,
            Graph = _graph,
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 17 });
        return model;
    }

    private string Initializer(string name, long[] dims, double std)
    {
        var count = checked((int)dims.Aggregate(1L, (a, b) => a * b));
        var values = new float[count];
        for (var i = 0; i < count; i++)
        {
            values[i] = (float)(_random.NextGaussian() * std);
        }

        var unique = Name(name);
        _graph.Initializer.Add(TensorData.FromFloats(unique, dims, values));
        Parameters += count;
        return unique;
    }

    private string Name(string wanted)
    {
        var seen = _names.GetValueOrDefault(wanted);
        _names[wanted] = seen + 1;
        return seen == 0 ? wanted : $"{wanted}_{seen}";
    }
}
