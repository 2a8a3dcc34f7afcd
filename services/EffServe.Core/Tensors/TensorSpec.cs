namespace EffServe.Core.Tensors;

/// <summary>A named tensor with its datatype and shape; -1 marks a dimension of variable size.</summary>
public sealed record TensorSpec(string Name, DataType DataType, IReadOnlyList<long> Shape)
{
    public override string ToString() => $"{Name} ({DataType.ToWireName()} {Shapes.Format(Shape)})";
}

public static class Shapes
{
    /// <summary>Formats a shape as [a, b, c] for messages.</summary>
    public static string Format(IEnumerable<long> shape) => "[" + string.Join(", ", shape) + "]";

    /// <summary>Number of elements of a concrete shape; throws on overflow or a negative dimension.</summary>
    public static long ElementCount(IReadOnlyList<long> shape)
    {
        long count = 1;
        foreach (var dim in shape)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(dim);
            count = checked(count * dim);
        }

        return count;
    }

    /// <summary>
    /// Whether a declared shape accepts a concrete one: same rank, and every fixed declared
    /// dimension equal. Declared -1 accepts any size.
    /// </summary>
    public static bool Accepts(IReadOnlyList<long> declared, IReadOnlyList<long> actual)
    {
        if (declared.Count != actual.Count)
        {
            return false;
        }

        for (var i = 0; i < declared.Count; i++)
        {
            if (actual[i] < 0 || (declared[i] >= 0 && declared[i] != actual[i]))
            {
                return false;
            }
        }

        return true;
    }
}
