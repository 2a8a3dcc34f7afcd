using EffServe.Zoo.Onnx;

namespace EffServe.Zoo.Synth;

/// <summary>The architectures <c>effserve zoo synth</c> builds.</summary>
public enum SynthArchitecture
{
    MobileNetV2,
    ResNet18,
}

/// <summary>
/// A synthetic model and what it costs: parameters, and multiply-accumulates per sample of its
/// convolutions and fully connected layers.
/// </summary>
public sealed record SynthModel(OnnxModel Model, SynthArchitecture Architecture, string InputName, string OutputName, int Resolution, int Classes, long Parameters, long MultiplyAccumulates)
{
    /// <summary>Floating-point operations per sample, counting a multiply-accumulate as two.</summary>
    public long Flops => 2 * MultiplyAccumulates;
}

/// <summary>
/// Structurally real image classifiers with seeded random weights, for performance work without
/// downloads: the layer shapes, operators and FLOPs of the published networks (batch norms folded
/// into convolution biases, as exported inference graphs have them), but weights that compute
/// nothing useful.
/// </summary>
public static class SynthModels
{
    public const string InputName = "input";
    public const string OutputName = "logits";
    public const int Resolution = 224;

    public static SynthModel Build(SynthArchitecture architecture, int seed, int classes)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(classes, 1);
        return architecture switch
        {
            SynthArchitecture.MobileNetV2 => MobileNetV2(seed, classes),
            SynthArchitecture.ResNet18 => ResNet18(seed, classes),
            _ => throw new ArgumentOutOfRangeException(nameof(architecture)),
        };
    }

    /// <summary>
    /// MobileNetV2 (width 1.0): a 3×3 stem, seventeen inverted residual blocks (1×1 expansion,
    /// 3×3 depthwise, 1×1 linear projection, ReLU6 as Clip, a residual Add where shape allows),
    /// a 1×1 head to 1280 channels, global pooling and a classifier.
    /// </summary>
    private static SynthModel MobileNetV2(int seed, int classes)
    {
        var b = new GraphBuilder("mobilenetv2", seed);
        var x = b.Input(InputName, 3, Resolution, Resolution);
        x = b.Relu6("stem", b.Conv("stem", x, 32, 3, stride: 2));

        // (expansion, output channels, blocks, first stride)
        (int T, int C, int N, int S)[] stages = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)];
        var block = 0;
        foreach (var (t, c, n, s) in stages)
        {
            for (var i = 0; i < n; i++, block++)
            {
                var scope = $"features.{block + 1}";
                var stride = i == 0 ? s : 1;
                var residual = stride == 1 && x.Channels == c;
                var h = x;
                if (t != 1)
                {
                    h = b.Relu6(scope + ".expand", b.Conv(scope + ".expand", h, x.Channels * t, 1));
                }

                h = b.Relu6(scope + ".depthwise", b.Conv(scope + ".depthwise", h, h.Channels, 3, stride, group: h.Channels));
                // The projection is linear; on a residual branch it is damped so the sum keeps its scale.
                h = b.Conv(scope + ".project", h, c, 1, gain: residual ? 0.5 : 1.0);
                x = residual ? b.Add(scope, x, h) : h;
            }
        }

        x = b.Relu6("head", b.Conv("head", x, 1280, 1));
        var logits = b.Linear("classifier", b.PoolAndFlatten("pool", x), classes, OutputName);
        var model = b.Build(logits, $"Synthetic MobileNetV2 (random weights, {classes} classes): for performance work only.");
        return new SynthModel(OnnxModel.FromProto(model), SynthArchitecture.MobileNetV2, InputName, OutputName, Resolution, classes, b.Parameters, b.MultiplyAccumulates);
    }

    /// <summary>
    /// ResNet-18: a 7×7 stride-2 stem and 3×3 max pool, four stages of two basic blocks (two 3×3
    /// convolutions, a 1×1 projection shortcut where the shape changes, residual Add then ReLU),
    /// global pooling and a classifier.
    /// </summary>
    private static SynthModel ResNet18(int seed, int classes)
    {
        var b = new GraphBuilder("resnet18", seed);
        var x = b.Input(InputName, 3, Resolution, Resolution);
        x = b.Relu("stem", b.Conv("conv1", x, 64, 7, stride: 2));
        x = b.MaxPool("maxpool", x, 3, 2, 1);
        int[] widths = [64, 128, 256, 512];
        for (var stage = 0; stage < widths.Length; stage++)
        {
            for (var i = 0; i < 2; i++)
            {
                var scope = $"layer{stage + 1}.{i}";
                var stride = stage > 0 && i == 0 ? 2 : 1;
                var h = b.Relu(scope + ".relu1", b.Conv(scope + ".conv1", x, widths[stage], 3, stride));
                // The second convolution of the branch is damped so the residual sum grows slowly.
                h = b.Conv(scope + ".conv2", h, widths[stage], 3, gain: 0.5);
                var shortcut = stride != 1 || x.Channels != widths[stage]
                    ? b.Conv(scope + ".downsample", x, widths[stage], 1, stride, gain: 1.0)
                    : x;
                x = b.Relu(scope + ".relu2", b.Add(scope, shortcut, h));
            }
        }

        var logits = b.Linear("fc", b.PoolAndFlatten("pool", x), classes, OutputName);
        var model = b.Build(logits, $"Synthetic ResNet-18 (random weights, {classes} classes): for performance work only.");
        return new SynthModel(OnnxModel.FromProto(model), SynthArchitecture.ResNet18, InputName, OutputName, Resolution, classes, b.Parameters, b.MultiplyAccumulates);
    }
}
