using System.Buffers;
using System.Runtime.InteropServices;
using System.Text;
using EffServe.Core.Tensors;
using Microsoft.ML.OnnxRuntime;

namespace EffServe.Onnx;

/// <summary>Moves tensors between the service's <see cref="NamedTensor"/> and ONNX Runtime's <see cref="OrtValue"/>.</summary>
internal static class OrtTensorConversion
{
    /// <summary>
    /// Wraps tensors as OrtValues. Fixed-size data is pinned and shared, not copied; disposing the
    /// returned set releases the values and then the pins.
    /// </summary>
    public static OrtValueSet ToOrtValues(IReadOnlyList<NamedTensor> tensors)
    {
        var set = new OrtValueSet(tensors.Count);
        try
        {
            foreach (var tensor in tensors)
            {
                set.Add(tensor.Name, ToOrtValue(tensor, set));
            }

            return set;
        }
        catch
        {
            set.Dispose();
            throw;
        }
    }

    private static unsafe OrtValue ToOrtValue(NamedTensor tensor, OrtValueSet set)
    {
        if (tensor.DataType == DataType.Bytes)
        {
            var value = OrtValue.CreateTensorWithEmptyStrings(OrtAllocator.DefaultInstance, tensor.Shape);
            try
            {
                var strings = tensor.Strings!;
                for (var i = 0; i < strings.Count; i++)
                {
                    value.StringTensorSetElementAt(strings[i].Span, i);
                }

                return value;
            }
            catch
            {
                value.Dispose();
                throw;
            }
        }

        if (tensor.Data.IsEmpty)
        {
            // Nothing to pin: let ONNX Runtime own the (empty) buffer.
            return OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, tensor.DataType.ToElementType(), tensor.Shape);
        }

        var handle = MemoryMarshal.AsMemory(tensor.Data).Pin();
        set.Pin(handle);
        return OrtValue.CreateTensorValueWithData(
            OrtMemoryInfo.DefaultInstance,
            tensor.DataType.ToElementType(),
            tensor.Shape,
            (IntPtr)handle.Pointer,
            tensor.Data.Length);
    }

    /// <summary>Copies an OrtValue's contents out into a tensor that outlives it.</summary>
    public static NamedTensor FromOrtValue(string name, OrtValue value)
    {
        var info = value.GetTensorTypeAndShape();
        if (!OrtTypes.TryToDataType(info.ElementDataType, out var type))
        {
            throw new InvalidOperationException($"Output '{name}' has element type {info.ElementDataType}, which the protocol cannot carry.");
        }

        var shape = info.Shape;
        if (type == DataType.Bytes)
        {
            var count = checked((int)info.ElementCount);
            var strings = new ReadOnlyMemory<byte>[count];
            for (var i = 0; i < count; i++)
            {
                strings[i] = Encoding.UTF8.GetBytes(value.GetStringElement(i));
            }

            return NamedTensor.FromStrings(name, shape, strings);
        }

        return NamedTensor.FromBytes(name, type, shape, value.GetTensorMutableRawData().ToArray());
    }

    /// <summary>Builds a tensor whose rows are the given rows (first dimension) of <paramref name="source"/>.</summary>
    public static OrtValue GatherRows(OrtValue source, IReadOnlyList<int> rows)
    {
        var info = source.GetTensorTypeAndShape();
        var shape = info.Shape;
        var rowCount = shape[0];
        var raw = source.GetTensorMutableRawData();
        var rowBytes = rowCount == 0 ? 0 : checked((int)(raw.Length / rowCount));
        var newShape = (long[])shape.Clone();
        newShape[0] = rows.Count;
        var target = OrtValue.CreateAllocatedTensorValue(OrtAllocator.DefaultInstance, info.ElementDataType, newShape);
        var destination = target.GetTensorMutableRawData();
        for (var i = 0; i < rows.Count; i++)
        {
            raw.Slice(rows[i] * rowBytes, rowBytes).CopyTo(destination.Slice(i * rowBytes, rowBytes));
        }

        return target;
    }
}

/// <summary>Named OrtValues for one run, with the pins on the managed memory they read.</summary>
internal sealed class OrtValueSet : IDisposable
{
    private readonly List<MemoryHandle> _pins = [];

    public OrtValueSet(int capacity)
    {
        Names = new List<string>(capacity);
        Values = new List<OrtValue>(capacity);
    }

    public List<string> Names { get; }

    public List<OrtValue> Values { get; }

    public void Add(string name, OrtValue value)
    {
        Names.Add(name);
        Values.Add(value);
    }

    public void Pin(MemoryHandle handle) => _pins.Add(handle);

    public void Dispose()
    {
        foreach (var value in Values)
        {
            value.Dispose();
        }

        foreach (var pin in _pins)
        {
            pin.Dispose();
        }

        Values.Clear();
        _pins.Clear();
    }
}
