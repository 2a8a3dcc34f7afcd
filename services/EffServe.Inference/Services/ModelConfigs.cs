using EffServe.Contracts.Inference.Config;
using EffServe.Core.Selection;
using EffServe.Core.Tensors;
using EffServe.Core.Zoo;
using ConfigType = EffServe.Contracts.Inference.Config.DataType;

namespace EffServe.Inference.Services;

/// <summary>
/// A served model described as Triton's ModelConfig, for the Triton tools that read a model's
/// configuration before they call it (perf_analyzer, the Triton clients' get_model_config).
/// </summary>
public static class ModelConfigs
{
    public const string Platform = "onnxruntime_onnx";
    public const string Backend = "onnxruntime";

    /// <param name="model">The model.</param>
    /// <param name="defaultVariant">The variant served when a request names none (its profile gives the preferred batch sizes).</param>
    /// <param name="loadedVariants">The variants loaded.</param>
    /// <param name="batchLimit">The most samples the service puts in one run of the model.</param>
    /// <param name="minBatchingGain">The gain in samples per second a larger batch must bring to be formed.</param>
    public static ModelConfig Describe(ModelDefinition model, string? defaultVariant, IEnumerable<string> loadedVariants, int batchLimit, double minBatchingGain)
    {
        var config = new ModelConfig
        {
            Name = model.Name,
            Platform = Platform,
            Backend = Backend,
            MaxBatchSize = model.MaxBatchSize,
        };
        var batched = model.HasBatchDimension;
        config.Input.Add(model.Inputs.Select(spec => new ModelInput { Name = spec.Name, DataType = ToConfigType(spec.DataType), Dims = { Dims(spec, batched) } }));
        config.Output.Add(model.Outputs.Select(spec => new ModelOutput { Name = spec.Name, DataType = ToConfigType(spec.DataType), Dims = { Dims(spec, batched) } }));
        config.Parameters["effserve.task"] = new ModelParameter { StringValue = model.Task };
        config.Parameters["effserve.variants"] = new ModelParameter { StringValue = string.Join(",", loadedVariants) };
        config.Parameters["effserve.default_variant"] = new ModelParameter { StringValue = defaultVariant ?? "" };
        config.Parameters["effserve.version"] = new ModelParameter { StringValue = model.Version };
        config.DynamicBatching = DynamicBatching(model, defaultVariant ?? model.DefaultVariant, batchLimit, minBatchingGain);
        return config;
    }

    /// <summary>
    /// How separate requests to <paramref name="model"/> are batched, or null when they are not
    /// (no batch dimension, or runs of one sample at most). The scheduler forms a batch from the
    /// requests already queued and never waits for more, so no request is delayed for batching; each
    /// request gets its own response, so order is not kept. Preferred are the sizes, up to the
    /// service's batch limit, at which the variant's profile shows batching pays by the service's
    /// minimum gain, as the scheduler decides; none without a profile (the scheduler then batches up to
    /// its limit). A profile at which no size pays means no dynamic batching at all.
    /// </summary>
    private static ModelDynamicBatching? DynamicBatching(ModelDefinition model, string variant, int batchLimit, double minGain)
    {
        if (!model.HasBatchDimension || model.MaxBatchSize <= 1 || batchLimit <= 1)
        {
            return null;
        }

        var batching = new ModelDynamicBatching { MaxQueueDelayMicroseconds = 0, PreserveOrdering = false };
        if (model.FindVariant(variant)?.Profile is { } profile)
        {
            // A fresh latency model knows the profile's sizes only, smallest first.
            var latency = new LatencyModel(profile);
            batching.PreferredBatchSize.Add(latency.Snapshot()
                .Select(e => e.BatchSize)
                .Where(b => b > 1 && b <= batchLimit && latency.BatchingPays(b, minGain)));
            if (batching.PreferredBatchSize.Count == 0)
            {
                return null; // measured, and no size pays: the scheduler runs one request at a time
            }
        }

        return batching;
    }

    /// <summary>A tensor type in Triton's configuration enum; BYTES is Triton's TYPE_STRING.</summary>
    public static ConfigType ToConfigType(Core.Tensors.DataType type) => type switch
    {
        Core.Tensors.DataType.Bool => ConfigType.TypeBool,
        Core.Tensors.DataType.UInt8 => ConfigType.TypeUint8,
        Core.Tensors.DataType.UInt16 => ConfigType.TypeUint16,
        Core.Tensors.DataType.UInt32 => ConfigType.TypeUint32,
        Core.Tensors.DataType.UInt64 => ConfigType.TypeUint64,
        Core.Tensors.DataType.Int8 => ConfigType.TypeInt8,
        Core.Tensors.DataType.Int16 => ConfigType.TypeInt16,
        Core.Tensors.DataType.Int32 => ConfigType.TypeInt32,
        Core.Tensors.DataType.Int64 => ConfigType.TypeInt64,
        Core.Tensors.DataType.Fp16 => ConfigType.TypeFp16,
        Core.Tensors.DataType.Fp32 => ConfigType.TypeFp32,
        Core.Tensors.DataType.Fp64 => ConfigType.TypeFp64,
        Core.Tensors.DataType.Bytes => ConfigType.TypeString,
        Core.Tensors.DataType.Bf16 => ConfigType.TypeBf16,
        _ => ConfigType.TypeInvalid,
    };

    /// <summary>Triton's dims leave the batch dimension out when the model batches.</summary>
    private static IEnumerable<long> Dims(TensorSpec spec, bool batched) => batched ? spec.Shape.Skip(1) : spec.Shape;
}
