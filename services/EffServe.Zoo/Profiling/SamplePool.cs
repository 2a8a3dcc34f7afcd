using EffServe.Core.Tensors;
using EffServe.Core.Zoo;
using EffServe.Zoo.Data;

namespace EffServe.Zoo.Profiling;

/// <summary>
/// Model inputs to time and score: the evaluation set (with its labels) or seeded random samples,
/// handed out as batches of <see cref="NamedTensor"/>s that are views over the samples, not copies.
/// </summary>
internal sealed class SamplePool
{
    private readonly SampleSet _samples;
    private readonly IReadOnlyList<TensorSpec> _inputs;

    private SamplePool(SampleSet samples, IReadOnlyList<TensorSpec> inputs, bool batched, long[]? labels)
    {
        _samples = samples;
        _inputs = inputs;
        Batched = batched;
        Labels = labels;
    }

    /// <summary>Samples in the pool.</summary>
    public int Count => _samples.Count;

    /// <summary>Whether the model has a batch dimension; without one every run takes exactly one sample.</summary>
    public bool Batched { get; }

    /// <summary>Class index of each sample, for evaluation sets.</summary>
    public long[]? Labels { get; }

    /// <summary>The model's evaluation set and labels (the loader has checked their types and shapes).</summary>
    public static SamplePool FromEvaluation(ModelDefinition model, EvaluationSetDefinition evaluation) =>
        new(SampleSet.FromEvaluation(evaluation), model.Inputs, model.HasBatchDimension, SampleSet.ReadLabels(evaluation.LabelsFile));

    /// <summary><paramref name="samples"/> seeded random samples, for a model without an evaluation set.</summary>
    public static SamplePool Synthetic(ModelDefinition model, int samples, int seed) =>
        new(SampleSet.Random(model.Inputs, model.HasBatchDimension, samples, seed), model.Inputs, model.HasBatchDimension, null);

    /// <summary>This pool, or its samples repeated until there are at least <paramref name="samples"/> (a batch larger than the set).</summary>
    public SamplePool WithAtLeast(int samples)
    {
        if (Count >= samples || Count == 0)
        {
            return this;
        }

        var copies = (samples + Count - 1) / Count;
        var tiled = _samples.Inputs.ToDictionary(
            kv => kv.Key,
            kv => new NpyArray(kv.Value.DataType, [Count * copies, .. kv.Value.Shape.Skip(1)], Tile(kv.Value.Data, Count * kv.Value.RowBytes, copies)),
            StringComparer.Ordinal);
        return new SamplePool(new SampleSet(tiled), _inputs, Batched, Labels is null ? null : Tile(Labels, Count, copies));
    }

    /// <summary>
    /// The model's inputs for samples [<paramref name="start"/>, <paramref name="start"/> + <paramref name="count"/>):
    /// a batch of that size, or, for a model without a batch dimension, the one sample as the input itself.
    /// </summary>
    public IReadOnlyList<NamedTensor> Rows(int start, int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(start);
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(start + count, Count);
        if (!Batched && count != 1)
        {
            throw new ArgumentOutOfRangeException(nameof(count), count, "A model without a batch dimension takes one sample per run.");
        }

        var tensors = new NamedTensor[_inputs.Count];
        for (var i = 0; i < tensors.Length; i++)
        {
            var name = _inputs[i].Name;
            var array = _samples.Inputs[name];
            var perSample = array.Shape.Skip(1);
            long[] shape = Batched ? [count, .. perSample] : [.. perSample];
            tensors[i] = NamedTensor.FromBytes(name, array.DataType, shape, array.Data.AsMemory(start * array.RowBytes, count * array.RowBytes));
        }

        return tensors;
    }

    private static T[] Tile<T>(T[] source, int length, int copies)
    {
        var tiled = new T[checked(length * copies)];
        for (var k = 0; k < copies; k++)
        {
            Array.Copy(source, 0, tiled, k * length, length);
        }

        return tiled;
    }
}
