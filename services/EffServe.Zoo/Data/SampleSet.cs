using System.Runtime.InteropServices;
using EffServe.Core.Tensors;
using EffServe.Core.Zoo;

namespace EffServe.Zoo.Data;

/// <summary>
/// Inputs for many samples, held in memory: one array per model input, samples along the first
/// dimension. Calibration, verification and accuracy runs read their batches from here.
/// </summary>
public sealed class SampleSet
{
    public SampleSet(IReadOnlyDictionary<string, NpyArray> inputs)
    {
        if (inputs.Count == 0)
        {
            throw new ArgumentException("a sample set needs at least one input.", nameof(inputs));
        }

        Inputs = inputs;
        Count = inputs.Values.Min(a => a.Shape.Count == 0 ? 0 : checked((int)a.Shape[0]));
    }

    public IReadOnlyDictionary<string, NpyArray> Inputs { get; }

    public int Count { get; }

    /// <summary>The first <paramref name="samples"/> samples (all of them when there are fewer).</summary>
    public SampleSet Take(int samples)
    {
        if (samples >= Count)
        {
            return this;
        }

        return new SampleSet(Inputs.ToDictionary(
            kv => kv.Key,
            kv => new NpyArray(kv.Value.DataType, [samples, .. kv.Value.Shape.Skip(1)], kv.Value.Data.AsSpan(0, samples * kv.Value.RowBytes).ToArray()),
            StringComparer.Ordinal));
    }

    /// <summary>The bytes of samples [start, start + count) of one input.</summary>
    public ReadOnlySpan<byte> Rows(string input, int start, int count)
    {
        var array = Inputs[input];
        return array.Data.AsSpan(start * array.RowBytes, count * array.RowBytes);
    }

    /// <summary>A model's evaluation inputs, read from its .npy files.</summary>
    public static SampleSet FromEvaluation(EvaluationSetDefinition evaluation) =>
        new(evaluation.InputFiles.ToDictionary(kv => kv.Key, kv => ReadNpy(kv.Value), StringComparer.Ordinal));

    /// <summary>
    /// Seeded random inputs: standard normal values for floating-point inputs, small non-negative
    /// integers for integer inputs, with every variable dimension after the first set to 1.
    /// </summary>
    public static SampleSet Random(IReadOnlyList<TensorSpec> inputs, bool hasBatchDimension, int samples, int seed)
    {
        var random = new Random(seed);
        var arrays = new Dictionary<string, NpyArray>(StringComparer.Ordinal);
        foreach (var spec in inputs)
        {
            var perSample = (hasBatchDimension ? spec.Shape.Skip(1) : spec.Shape).Select(d => d < 0 ? 1 : d).ToArray();
            var count = checked((int)(samples * Shapes.ElementCount(perSample)));
            var data = new byte[count * spec.DataType.ElementSize()];
            switch (spec.DataType)
            {
                case DataType.Fp32:
                    var floats = MemoryMarshal.Cast<byte, float>(data.AsSpan());
                    for (var i = 0; i < floats.Length; i++)
                    {
                        floats[i] = (float)random.NextGaussian();
                    }

                    break;
                case DataType.Fp16:
                    var halves = MemoryMarshal.Cast<byte, Half>(data.AsSpan());
                    for (var i = 0; i < halves.Length; i++)
                    {
                        halves[i] = (Half)random.NextGaussian();
                    }

                    break;
                case DataType.Fp64:
                    var doubles = MemoryMarshal.Cast<byte, double>(data.AsSpan());
                    for (var i = 0; i < doubles.Length; i++)
                    {
                        doubles[i] = random.NextGaussian();
                    }

                    break;
                case DataType.Bytes or DataType.Bf16:
                    throw new ZooToolException(ZooToolError.InvalidData, $"input '{spec.Name}' is {spec.DataType.ToWireName()}; random samples cannot be made for it, give a data file instead.");
                default:
                    // Integers (and booleans): 0 or 1 in the lowest byte of each element stays valid for every width.
                    var size = spec.DataType.ElementSize();
                    for (var i = 0; i < count; i++)
                    {
                        data[i * size] = (byte)random.Next(2);
                    }

                    break;
            }

            arrays[spec.Name] = new NpyArray(spec.DataType, [samples, .. perSample], data);
        }

        return new SampleSet(arrays);
    }

    /// <summary>
    /// Checks that the set feeds a model with these inputs: one array per input, each of the
    /// input's datatype and of its shape per sample.
    /// </summary>
    /// <exception cref="ZooToolException">An array is missing or has the wrong datatype or shape (InvalidData).</exception>
    public void CheckFits(IReadOnlyList<TensorSpec> inputs, bool hasBatchDimension, string source)
    {
        foreach (var spec in inputs)
        {
            if (!Inputs.TryGetValue(spec.Name, out var array))
            {
                throw new ZooToolException(ZooToolError.InvalidData, $"{source} has no data for input '{spec.Name}' (it has: {string.Join(", ", Inputs.Keys)}).");
            }

            var perSample = hasBatchDimension ? spec.Shape.Skip(1).ToArray() : spec.Shape.ToArray();
            var expected = $"{spec.DataType.ToWireName()} [samples, {string.Join(", ", perSample)}]";
            if (array.DataType != spec.DataType)
            {
                throw new ZooToolException(ZooToolError.InvalidData, $"{source}: data for input '{spec.Name}' is {array.DataType.ToWireName()} {Shapes.Format(array.Shape)}; the model takes {expected}.");
            }

            if (array.Shape.Count != perSample.Length + 1 || !Shapes.Accepts(perSample, array.Shape.Skip(1).ToArray()))
            {
                throw new ZooToolException(ZooToolError.InvalidData, $"{source}: data for input '{spec.Name}' has shape {Shapes.Format(array.Shape)}; the model takes {expected}.");
            }
        }

        foreach (var extra in Inputs.Keys.Where(k => inputs.All(i => i.Name != k)))
        {
            throw new ZooToolException(ZooToolError.InvalidData, $"{source} has data for '{extra}', which is not an input of the model (inputs: {string.Join(", ", inputs.Select(i => i.Name))}).");
        }

        if (Count == 0)
        {
            throw new ZooToolException(ZooToolError.InvalidData, $"{source} holds no samples.");
        }

        if (Inputs.Values.Any(a => a.Shape[0] != Count))
        {
            throw new ZooToolException(ZooToolError.InvalidData, $"{source}: the inputs hold different numbers of samples ({string.Join(", ", Inputs.Select(kv => $"{kv.Key}: {kv.Value.Shape[0]}"))}).");
        }
    }

    /// <summary>Reads class labels (integer .npy, one per sample).</summary>
    public static long[] ReadLabels(string path)
    {
        var array = ReadNpy(path);
        if (array.Shape.Count != 1)
        {
            throw new ZooToolException(ZooToolError.InvalidData, $"{path}: labels must be one class index per sample, shape [samples]; it is {Shapes.Format(array.Shape)}.");
        }

        return array.DataType switch
        {
            DataType.Int64 => MemoryMarshal.Cast<byte, long>(array.Data).ToArray(),
            DataType.Int32 => Array.ConvertAll(MemoryMarshal.Cast<byte, int>(array.Data).ToArray(), v => (long)v),
            _ => throw new ZooToolException(ZooToolError.InvalidData, $"{path}: labels must be INT64 or INT32 class indices, not {array.DataType.ToWireName()}."),
        };
    }

    /// <summary>Reads an .npy file, turning format problems into InvalidData errors.</summary>
    public static NpyArray ReadNpy(string path)
    {
        try
        {
            return NpyArray.Read(path);
        }
        catch (FormatException e)
        {
            throw new ZooToolException(ZooToolError.InvalidData, e.Message, e);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new ZooToolException(ZooToolError.NotFound, $"{Path.GetFullPath(path)} does not exist.", e);
        }
    }
}
