using Google.Protobuf;

namespace EffServe.Protocol.Tests;

/// <summary>A decoded protobuf message: field number → raw values, as the wire carries them.</summary>
internal sealed class WireMessage
{
    private readonly Dictionary<int, List<object>> _fields = [];

    public static WireMessage Parse(ReadOnlySpan<byte> bytes)
    {
        var message = new WireMessage();
        var input = new CodedInputStream(bytes.ToArray());
        uint tag;
        while ((tag = input.ReadTag()) != 0)
        {
            var field = WireFormat.GetTagFieldNumber(tag);
            object value = WireFormat.GetTagWireType(tag) switch
            {
                WireFormat.WireType.Varint => input.ReadUInt64(),
                WireFormat.WireType.Fixed64 => input.ReadFixed64(),
                WireFormat.WireType.Fixed32 => input.ReadFixed32(),
                WireFormat.WireType.LengthDelimited => input.ReadBytes().ToByteArray(),
                var other => throw new InvalidDataException($"unexpected wire type {other}"),
            };
            if (!message._fields.TryGetValue(field, out var list))
            {
                message._fields[field] = list = [];
            }

            list.Add(value);
        }

        return message;
    }

    public IEnumerable<byte[]> Bytes(int field) => Values(field).Cast<byte[]>();

    public string String(int field) => Bytes(field).Select(b => System.Text.Encoding.UTF8.GetString(b)).LastOrDefault() ?? "";

    public IEnumerable<string> Strings(int field) => Bytes(field).Select(b => System.Text.Encoding.UTF8.GetString(b));

    public IEnumerable<WireMessage> Messages(int field) => Bytes(field).Select(b => Parse(b));

    public bool Bool(int field) => Values(field).Cast<ulong>().LastOrDefault() != 0;

    public long Int64(int field) => (long)Values(field).Cast<ulong>().LastOrDefault();

    public double Double(int field) => BitConverter.UInt64BitsToDouble(Values(field).Cast<ulong>().LastOrDefault());

    /// <summary>A repeated int64 field, packed (proto3's default) or not.</summary>
    public List<long> PackedInt64(int field)
    {
        var result = new List<long>();
        foreach (var value in Values(field))
        {
            if (value is byte[] packed)
            {
                var input = new CodedInputStream(packed);
                while (!input.IsAtEnd)
                {
                    result.Add(input.ReadInt64());
                }
            }
            else
            {
                result.Add((long)(ulong)value);
            }
        }

        return result;
    }

    private IEnumerable<object> Values(int field) => _fields.TryGetValue(field, out var list) ? list : [];
}

/// <summary>Writes protobuf fields by number.</summary>
internal sealed class WireWriter
{
    private readonly MemoryStream _buffer = new();
    private readonly CodedOutputStream _output;

    public WireWriter()
    {
        _output = new CodedOutputStream(_buffer, leaveOpen: true);
    }

    public WireWriter String(int field, string value)
    {
        _output.WriteTag(field, WireFormat.WireType.LengthDelimited);
        _output.WriteString(value);
        return this;
    }

    public WireWriter Bytes(int field, byte[] value)
    {
        _output.WriteTag(field, WireFormat.WireType.LengthDelimited);
        _output.WriteBytes(ByteString.CopyFrom(value));
        return this;
    }

    public WireWriter Message(int field, WireWriter message) => Bytes(field, message.ToArray());

    public WireWriter PackedInt64(int field, IEnumerable<long> values)
    {
        var packed = new WireWriter();
        foreach (var v in values)
        {
            packed._output.WriteInt64(v);
        }

        return Bytes(field, packed.ToArray());
    }

    public WireWriter Double(int field, double value)
    {
        _output.WriteTag(field, WireFormat.WireType.Fixed64);
        _output.WriteDouble(value);
        return this;
    }

    public byte[] ToArray()
    {
        _output.Flush();
        return _buffer.ToArray();
    }
}
