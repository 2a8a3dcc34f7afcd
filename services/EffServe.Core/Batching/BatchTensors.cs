using System.Globalization;
using EffServe.Core.Tensors;

namespace EffServe.Core.Batching;

/// <summary>
/// Joins the inputs of several requests into one batch along the first (batch) dimension, and
/// splits a batch's outputs back into each request's rows.
/// </summary>
public static class BatchTensors
{
    /// <summary>
    /// A key that is equal for two requests exactly when their inputs can be joined: same names,
    /// datatypes and shapes but for the batch dimension, and the same requested outputs. Null when
    /// the request cannot join a batch (no batch dimension, or BYTES inputs).
    /// </summary>
    public static string? JoinKey(IReadOnlyList<NamedTensor> inputs, IReadOnlyList<string> outputs)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentNullException.ThrowIfNull(outputs);
        var parts = new List<string>(inputs.Count + 1);
        foreach (var t in inputs)
        {
            if (!t.DataType.IsFixedSize() || t.Shape.Length == 0)
            {
                return null;
            }

            parts.Add(string.Create(CultureInfo.InvariantCulture, $"{t.Name}:{t.DataType.ToWireName()}:{string.Join('x', t.Shape.Skip(1))}"));
        }

        parts.Add(string.Join(',', outputs));
        return string.Join('|', parts);
    }

    /// <summary>Samples a request brings: the first dimension of its first input (1 without one).</summary>
    public static int Samples(IReadOnlyList<NamedTensor> inputs) =>
        inputs.Count > 0 && inputs[0].Shape.Length > 0 ? checked((int)inputs[0].Shape[0]) : 1;

    /// <summary>Joins each input of every request, in order. The requests must share a <see cref="JoinKey"/>.</summary>
    public static List<NamedTensor> Concatenate(IReadOnlyList<IReadOnlyList<NamedTensor>> requests)
    {
        ArgumentNullException.ThrowIfNull(requests);
        if (requests.Count == 1)
        {
            return [.. requests[0]];
        }

        var first = requests[0];
        var joined = new List<NamedTensor>(first.Count);
        for (var i = 0; i < first.Count; i++)
        {
            var spec = first[i];
            var rows = requests.Sum(r => r[i].Shape[0]);
            var bytes = new byte[requests.Sum(r => r[i].Data.Length)];
            var at = 0;
            foreach (var r in requests)
            {
                r[i].Data.Span.CopyTo(bytes.AsSpan(at));
                at += r[i].Data.Length;
            }

            var shape = (long[])spec.Shape.Clone();
            shape[0] = rows;
            joined.Add(NamedTensor.FromBytes(spec.Name, spec.DataType, shape, bytes));
        }

        return joined;
    }

    /// <summary>
    /// Splits every output into consecutive slices of <paramref name="samples"/> rows each
    /// (one list of outputs per request). An output without a batch dimension goes whole to each.
    /// </summary>
    public static List<NamedTensor>[] Split(IReadOnlyList<NamedTensor> outputs, IReadOnlyList<int> samples)
    {
        ArgumentNullException.ThrowIfNull(outputs);
        ArgumentNullException.ThrowIfNull(samples);
        var parts = new List<NamedTensor>[samples.Count];
        for (var p = 0; p < parts.Length; p++)
        {
            parts[p] = new List<NamedTensor>(outputs.Count);
        }

        var total = samples.Sum();
        foreach (var output in outputs)
        {
            if (samples.Count == 1 || output.Shape.Length == 0 || output.Shape[0] != total)
            {
                foreach (var part in parts)
                {
                    part.Add(output);
                }

                continue;
            }

            var perRow = checked((int)(output.ElementCount / total));
            var row = 0;
            for (var p = 0; p < parts.Length; p++)
            {
                var shape = (long[])output.Shape.Clone();
                shape[0] = samples[p];
                parts[p].Add(output.DataType.IsFixedSize()
                    ? NamedTensor.FromBytes(output.Name, output.DataType, shape, output.Data.Slice(row * perRow * output.DataType.ElementSize(), samples[p] * perRow * output.DataType.ElementSize()))
                    : NamedTensor.FromStrings(output.Name, shape, [.. output.Strings!.Skip(row * perRow).Take(samples[p] * perRow)]));
                row += samples[p];
            }
        }

        return parts;
    }
}
