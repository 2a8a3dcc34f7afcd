using System.Buffers;
using System.Collections.Frozen;
using System.Text;

namespace EffServe.Gateway.Tests.Support;

/// <summary>A malformed HPACK header block.</summary>
internal sealed class HpackException(string message) : Exception(message);

/// <summary>
/// One decoded header field. Names and values are Latin-1: each octet on the wire is one char.
/// Fields taken from the static table (and from the dynamic table) reuse the table's string
/// instances, so an indexed field allocates nothing.
/// </summary>
internal readonly record struct HeaderField(string Name, string Value);

/// <summary>
/// The HPACK (RFC 7541) decoder of one direction of one HTTP/2 connection. It keeps the dynamic
/// table from one header block to the next, so every block of that direction must pass through the
/// same instance, in order. Not thread-safe (a connection's frames are read by one reader).
/// </summary>
internal sealed class HpackDecoder
{
    /// <summary>RFC 7541 §4.1: each dynamic table entry costs its name and value octets plus 32.</summary>
    private const int EntryOverhead = 32;

    private readonly int _maxTableSize;
    private readonly int _maxHeaderListBytes;

    // The dynamic table as a ring: _entries[_newest] is dynamic index 1 (HPACK index 62), the
    // entry before it (wrapping) index 2, and so on for _count entries.
    private HeaderField[] _entries = [];
    private int _newest = -1;
    private int _count;
    private int _size;
    private int _capacity;

    /// <param name="maxTableSize">The SETTINGS_HEADER_TABLE_SIZE advertised to the peer: the most
    /// a dynamic table size update may ask for, and the table's size until the peer sends one.</param>
    /// <param name="maxHeaderListBytes">The most octets of names and values one header block may
    /// decode to; beyond it the block is refused.</param>
    public HpackDecoder(int maxTableSize = 4096, int maxHeaderListBytes = 64 * 1024)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxTableSize);
        ArgumentOutOfRangeException.ThrowIfNegative(maxHeaderListBytes);
        _maxTableSize = maxTableSize;
        _maxHeaderListBytes = maxHeaderListBytes;
        _capacity = maxTableSize;
    }

    /// <summary>
    /// Decodes one complete header block (HEADERS and CONTINUATION payloads joined, padding and
    /// priority removed) and appends its fields, in order, to <paramref name="fields"/>. On a
    /// malformed block it throws <see cref="HpackException"/>; the fields appended so far and the
    /// dynamic table are then unusable, as the connection is (RFC 7540 §4.3).
    /// </summary>
    public void Decode(ReadOnlySpan<byte> block, List<HeaderField> fields)
    {
        ArgumentNullException.ThrowIfNull(fields);
        var pos = 0;
        var budget = _maxHeaderListBytes;
        var sawField = false;
        while (pos < block.Length)
        {
            var first = block[pos];
            HeaderField field;
            if ((first & 0x80) != 0)
            {
                // §6.1 indexed header field.
                field = Lookup(ReadInteger(block, ref pos, 7));
                Spend(ref budget, field.Name.Length + field.Value.Length);
            }
            else if ((first & 0x40) != 0)
            {
                // §6.2.1 literal with incremental indexing.
                field = ReadLiteral(block, ref pos, 6, ref budget);
                Add(field);
            }
            else if ((first & 0x20) != 0)
            {
                // §6.3 dynamic table size update: only before the block's first field (§4.2).
                if (sawField)
                {
                    throw new HpackException("HPACK: a dynamic table size update came after a header field; it is only allowed at the start of a header block");
                }

                var size = ReadInteger(block, ref pos, 5);
                if (size > _maxTableSize)
                {
                    throw new HpackException($"HPACK: a dynamic table size update asks for {size} octets, above the {_maxTableSize} advertised in SETTINGS_HEADER_TABLE_SIZE");
                }

                _capacity = size;
                EvictTo(size);
                continue;
            }
            else
            {
                // §6.2.2 without indexing (0000) and §6.2.3 never indexed (0001): both leave the table alone.
                field = ReadLiteral(block, ref pos, 4, ref budget);
            }

            sawField = true;
            fields.Add(field);
        }
    }

    private HeaderField ReadLiteral(ReadOnlySpan<byte> block, ref int pos, int prefixBits, ref int budget)
    {
        var nameIndex = ReadInteger(block, ref pos, prefixBits);
        string name;
        if (nameIndex == 0)
        {
            name = ReadString(block, ref pos, budget);
        }
        else
        {
            name = Lookup(nameIndex).Name;
        }

        Spend(ref budget, name.Length);
        var value = ReadString(block, ref pos, budget);
        Spend(ref budget, value.Length);
        return new HeaderField(name, value);
    }

    private void Spend(ref int budget, int octets)
    {
        budget -= octets;
        if (budget < 0)
        {
            throw new HpackException($"HPACK: the header block decodes to more than {_maxHeaderListBytes} octets of names and values");
        }
    }

    private HeaderField Lookup(int index)
    {
        if (index == 0)
        {
            throw new HpackException("HPACK: index 0 is not a valid header table index");
        }

        if (index <= HpackTables.Static.Length)
        {
            return HpackTables.Static[index - 1];
        }

        var dynamic = index - HpackTables.Static.Length;
        if (dynamic > _count)
        {
            throw new HpackException($"HPACK: index {index} is beyond the static table ({HpackTables.Static.Length} entries) and the dynamic table ({_count} entries)");
        }

        var slot = _newest - (dynamic - 1);
        if (slot < 0)
        {
            slot += _entries.Length;
        }

        return _entries[slot];
    }

    /// <summary>RFC 7541 §4.4: evict until the entry fits; an entry larger than the table empties it and is not added.</summary>
    private void Add(HeaderField field)
    {
        var entrySize = field.Name.Length + field.Value.Length + EntryOverhead;
        if (entrySize > _capacity)
        {
            EvictTo(0);
            return;
        }

        EvictTo(_capacity - entrySize);
        if (_count == _entries.Length)
        {
            Grow();
        }

        _newest = _newest + 1 == _entries.Length ? 0 : _newest + 1;
        _entries[_newest] = field;
        _count++;
        _size += entrySize;
    }

    private void EvictTo(int size)
    {
        while (_size > size)
        {
            var oldest = _newest - (_count - 1);
            if (oldest < 0)
            {
                oldest += _entries.Length;
            }

            var entry = _entries[oldest];
            _size -= entry.Name.Length + entry.Value.Length + EntryOverhead;
            _entries[oldest] = default;
            _count--;
        }
    }

    /// <summary>Doubles the ring, oldest entry first at slot 0. Entries are at least 32 octets, so
    /// the ring never needs more than capacity / 32 slots.</summary>
    private void Grow()
    {
        var grown = new HeaderField[Math.Max(8, _entries.Length * 2)];
        for (var i = 0; i < _count; i++)
        {
            var slot = _newest - (_count - 1) + i;
            if (slot < 0)
            {
                slot += _entries.Length;
            }

            grown[i] = _entries[slot];
        }

        _entries = grown;
        _newest = _count - 1;
    }

    /// <summary>RFC 7541 §5.1 integer with a prefix of <paramref name="prefixBits"/> bits, at most int.MaxValue.</summary>
    private static int ReadInteger(ReadOnlySpan<byte> block, ref int pos, int prefixBits)
    {
        var max = (1 << prefixBits) - 1;
        var value = block[pos++] & max;
        if (value < max)
        {
            return value;
        }

        long total = value;
        var shift = 0;
        while (true)
        {
            if (pos >= block.Length)
            {
                throw new HpackException("HPACK: the header block ends inside an integer");
            }

            var b = block[pos++];
            total += (long)(b & 0x7F) << shift;
            if (total > int.MaxValue)
            {
                throw new HpackException("HPACK: an integer exceeds 2^31-1");
            }

            if ((b & 0x80) == 0)
            {
                return (int)total;
            }

            shift += 7;
            if (shift > 28)
            {
                throw new HpackException("HPACK: an integer has more continuation octets than 2^31-1 needs");
            }
        }
    }

    /// <summary>RFC 7541 §5.2 string literal, raw or Huffman-coded, as Latin-1.</summary>
    private string ReadString(ReadOnlySpan<byte> block, ref int pos, int budget)
    {
        if (pos >= block.Length)
        {
            throw new HpackException("HPACK: the header block ends before a string literal");
        }

        var huffman = (block[pos] & 0x80) != 0;
        var length = ReadInteger(block, ref pos, 7);
        if (length > block.Length - pos)
        {
            throw new HpackException($"HPACK: a string literal of {length} octets runs past the end of the header block ({block.Length - pos} left)");
        }

        var raw = block.Slice(pos, length);
        pos += length;
        if (huffman)
        {
            return HpackHuffman.Decode(raw);
        }

        if (length > budget)
        {
            Spend(ref budget, length); // throws before the string is made
        }

        return length == 0 ? "" : Encoding.Latin1.GetString(raw);
    }
}

/// <summary>
/// A stateless HPACK encoder: it never inserts into or refers to a dynamic table and never uses
/// Huffman coding, so what it writes decodes the same whatever the peer's decoder state.
/// </summary>
internal static class HpackEncoder
{
    /// <summary>
    /// Appends one field: as an indexed field when the static table holds (name, value) exactly
    /// (":method: POST" is 0x83), else as a literal without indexing (§6.2.2) naming the first static
    /// entry with that name, else as a literal without indexing with a new name. The name is written
    /// as given (HTTP/2 wants it lowercase). Both strings must be Latin-1 (chars up to U+00FF).
    /// </summary>
    public static void Write(IBufferWriter<byte> output, string name, string value)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(value);

        var nameIndex = 0;
        if (HpackTables.StaticNames.TryGetValue(name, out var first))
        {
            var table = HpackTables.Static;
            for (var i = first; i < table.Length && string.Equals(table[i].Name, name, StringComparison.Ordinal); i++)
            {
                if (string.Equals(table[i].Value, value, StringComparison.Ordinal))
                {
                    var indexed = output.GetSpan(1);
                    indexed[0] = (byte)(0x80 | (i + 1)); // static indices are at most 61: one octet
                    output.Advance(1);
                    return;
                }
            }

            nameIndex = first + 1;
        }

        if (!IsLatin1(value))
        {
            throw new ArgumentException($"The value of header '{name}' has a character beyond Latin-1, which HPACK cannot carry.", nameof(value));
        }

        var length = IntegerLength(nameIndex, 4) + IntegerLength(value.Length, 7) + value.Length;
        if (nameIndex == 0)
        {
            if (!IsLatin1(name))
            {
                throw new ArgumentException("A header name has a character beyond Latin-1, which HPACK cannot carry.", nameof(name));
            }

            length += IntegerLength(name.Length, 7) + name.Length;
        }

        var span = output.GetSpan(length);
        var pos = WriteInteger(span, nameIndex, 4, 0x00);
        if (nameIndex == 0)
        {
            pos += WriteString(span[pos..], name);
        }

        pos += WriteString(span[pos..], value);
        output.Advance(pos);
    }

    /// <summary>Whether every char fits one octet. A plain loop: header strings are short, and
    /// MemoryExtensions' range searches measured 96 bytes allocated per call on this runtime.</summary>
    private static bool IsLatin1(string text)
    {
        var all = 0;
        foreach (var c in text)
        {
            all |= c;
        }

        return all <= 0xFF;
    }

    private static int WriteString(Span<byte> destination, string text)
    {
        var pos = WriteInteger(destination, text.Length, 7, 0x00); // H bit clear: raw octets
        pos += Encoding.Latin1.GetBytes(text, destination[pos..]);
        return pos;
    }

    private static int IntegerLength(int value, int prefixBits)
    {
        var max = (1 << prefixBits) - 1;
        if (value < max)
        {
            return 1;
        }

        var length = 2;
        for (var rest = (uint)(value - max); rest >= 0x80; rest >>= 7)
        {
            length++;
        }

        return length;
    }

    private static int WriteInteger(Span<byte> destination, int value, int prefixBits, byte flags)
    {
        var max = (1 << prefixBits) - 1;
        if (value < max)
        {
            destination[0] = (byte)(flags | value);
            return 1;
        }

        destination[0] = (byte)(flags | max);
        var pos = 1;
        var rest = (uint)(value - max);
        while (rest >= 0x80)
        {
            destination[pos++] = (byte)(rest | 0x80);
            rest >>= 7;
        }

        destination[pos++] = (byte)rest;
        return pos;
    }
}

/// <summary>The static table of RFC 7541 Appendix A, shared by the decoder and the encoder.</summary>
file static class HpackTables
{
    /// <summary>Static entries; HPACK index i is element i - 1.</summary>
    public static readonly HeaderField[] Static =
    [
        new(":authority", ""),
        new(":method", "GET"),
        new(":method", "POST"),
        new(":path", "/"),
        new(":path", "/index.html"),
        new(":scheme", "http"),
        new(":scheme", "https"),
        new(":status", "200"),
        new(":status", "204"),
        new(":status", "206"),
        new(":status", "304"),
        new(":status", "400"),
        new(":status", "404"),
        new(":status", "500"),
        new("accept-charset", ""),
        new("accept-encoding", "gzip, deflate"),
        new("accept-language", ""),
        new("accept-ranges", ""),
        new("accept", ""),
        new("access-control-allow-origin", ""),
        new("age", ""),
        new("allow", ""),
        new("authorization", ""),
        new("cache-control", ""),
        new("content-disposition", ""),
        new("content-encoding", ""),
        new("content-language", ""),
        new("content-length", ""),
        new("content-location", ""),
        new("content-range", ""),
        new("content-type", ""),
        new("cookie", ""),
        new("date", ""),
        new("etag", ""),
        new("expect", ""),
        new("expires", ""),
        new("from", ""),
        new("host", ""),
        new("if-match", ""),
        new("if-modified-since", ""),
        new("if-none-match", ""),
        new("if-range", ""),
        new("if-unmodified-since", ""),
        new("last-modified", ""),
        new("link", ""),
        new("location", ""),
        new("max-forwards", ""),
        new("proxy-authenticate", ""),
        new("proxy-authorization", ""),
        new("range", ""),
        new("referer", ""),
        new("refresh", ""),
        new("retry-after", ""),
        new("server", ""),
        new("set-cookie", ""),
        new("strict-transport-security", ""),
        new("transfer-encoding", ""),
        new("user-agent", ""),
        new("vary", ""),
        new("via", ""),
        new("www-authenticate", ""),
    ];

    /// <summary>Each static name to the position in <see cref="Static"/> of its first entry (entries
    /// sharing a name are adjacent).</summary>
    public static readonly FrozenDictionary<string, int> StaticNames = BuildStaticNames();

    private static FrozenDictionary<string, int> BuildStaticNames()
    {
        var names = new Dictionary<string, int>(StringComparer.Ordinal);
        for (var i = 0; i < Static.Length; i++)
        {
            names.TryAdd(Static[i].Name, i);
        }

        return names.ToFrozenDictionary(StringComparer.Ordinal);
    }
}

/// <summary>
/// The Huffman code of RFC 7541 Appendix B, decoded four bits at a time. The code is canonical
/// (codes of one length are consecutive, shorter codes first, ties by symbol), so the table holds
/// only each symbol's code length and the codes are rebuilt from them. From the codes the type
/// builds the code tree, then a state machine whose states are the tree's inner nodes: for each state
/// and each nibble, the state after those four bits and the symbol completed on the way, if any
/// (codes are at least 5 bits long, so a nibble completes at most one).
/// </summary>
file static class HpackHuffman
{
    private const int Eos = 256;
    private const uint Emits = 1u << 16;
    private const uint HitsEos = 1u << 17;
    private const int StackChars = 256;

    /// <summary>Code length in bits of symbols 0..255 and EOS (256), from RFC 7541 Appendix B.</summary>
    private static ReadOnlySpan<byte> CodeLengths =>
    [
        13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, // 0-15
        28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28, // 16-31
        6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, // ' ' - '/'
        5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, // '0' - '?'
        13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, // '@' - 'O'
        7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, // 'P' - '_'
        15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, // '`' - 'o'
        6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, // 'p' - 127
        20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, // 128-143
        24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, // 144-159
        22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, // 160-175
        21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, // 176-191
        26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, // 192-207
        19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, // 208-223
        20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, // 224-239
        26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, // 240-255
        30, // EOS
    ];

    /// <summary>Each symbol's code, right-aligned (index 256 is EOS).</summary>
    private static readonly uint[] s_codes = BuildCodes();

    /// <summary>Entry [state * 16 + nibble]: next state in bits 0-7, the symbol completed in bits
    /// 8-15 when <see cref="Emits"/> is set, <see cref="HitsEos"/> when the bits spell EOS.</summary>
    private static readonly uint[] s_transitions;

    /// <summary>Per state: how many bits of padding it stands for when it is a valid place for a
    /// string to end (a run of one bits, a prefix of EOS, under 8 bits), else -1 when the string
    /// would end inside a symbol, or 8 and more for a run of ones too long for padding.</summary>
    private static readonly sbyte[] s_padding;

    static HpackHuffman()
    {
        // Tree: inner node n has children [2n] (bit 0) and [2n + 1] (bit 1); a child >= 0 is an
        // inner node, a child < 0 is the leaf of symbol ~child. Node 0 is the root. 257 leaves make
        // 256 inner nodes, so a state fits in a byte.
        var children = new int[2 * Eos];
        var nodes = 1;
        for (var symbol = 0; symbol <= Eos; symbol++)
        {
            var length = CodeLengths[symbol];
            var node = 0;
            for (var bit = length - 1; bit > 0; bit--)
            {
                var slot = (2 * node) + (int)((s_codes[symbol] >> bit) & 1);
                if (children[slot] == 0)
                {
                    children[slot] = nodes++;
                }

                node = children[slot];
            }

            children[(2 * node) + (int)(s_codes[symbol] & 1)] = ~symbol;
        }

        s_padding = new sbyte[nodes];
        Array.Fill(s_padding, (sbyte)-1);
        for (int node = 0, depth = 0; node >= 0; node = children[(2 * node) + 1], depth++)
        {
            s_padding[node] = (sbyte)depth;
        }

        s_transitions = new uint[nodes * 16];
        for (var state = 0; state < nodes; state++)
        {
            for (var nibble = 0; nibble < 16; nibble++)
            {
                var node = state;
                uint entry = 0;
                for (var bit = 3; bit >= 0; bit--)
                {
                    var child = children[(2 * node) + ((nibble >> bit) & 1)];
                    if (child >= 0)
                    {
                        node = child;
                        continue;
                    }

                    if (~child == Eos)
                    {
                        entry = HitsEos;
                        node = 0;
                        break;
                    }

                    entry = Emits | ((uint)~child << 8);
                    node = 0;
                }

                s_transitions[(state * 16) + nibble] = entry | (uint)node;
            }
        }
    }

    /// <summary>Decodes a Huffman-coded string literal to Latin-1 chars.</summary>
    public static string Decode(ReadOnlySpan<byte> encoded)
    {
        if (encoded.IsEmpty)
        {
            return "";
        }

        // The shortest code is 5 bits, so n octets decode to at most 8n / 5 chars.
        var most = (int)Math.Min(encoded.Length * 8L / 5, Array.MaxLength);
        char[]? rented = null;
        var chars = most <= StackChars ? stackalloc char[StackChars] : (rented = ArrayPool<char>.Shared.Rent(most));
        try
        {
            var transitions = s_transitions;
            var state = 0;
            var count = 0;
            foreach (var octet in encoded)
            {
                var entry = transitions[(state << 4) | (octet >> 4)];
                if ((entry & (Emits | HitsEos)) != 0)
                {
                    if ((entry & HitsEos) != 0)
                    {
                        throw EosInString();
                    }

                    chars[count++] = (char)((entry >> 8) & 0xFF);
                }

                state = (int)(entry & 0xFF);
                entry = transitions[(state << 4) | (octet & 0x0F)];
                if ((entry & (Emits | HitsEos)) != 0)
                {
                    if ((entry & HitsEos) != 0)
                    {
                        throw EosInString();
                    }

                    chars[count++] = (char)((entry >> 8) & 0xFF);
                }

                state = (int)(entry & 0xFF);
            }

            var padding = s_padding[state];
            if (padding < 0)
            {
                throw new HpackException("HPACK: a Huffman string ends inside a symbol, or its padding is not all one bits");
            }

            if (padding > 7)
            {
                throw new HpackException($"HPACK: a Huffman string ends with {padding} bits of padding; at most 7 are allowed");
            }

            return new string(chars[..count]);
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<char>.Shared.Return(rented);
            }
        }
    }

    private static HpackException EosInString() => new("HPACK: a Huffman string contains the EOS symbol");

    private static uint[] BuildCodes()
    {
        // Canonical assignment: walk symbols by (length, symbol); each next code is the previous
        // plus one, shifted left by the growth in length.
        var order = new int[Eos + 1];
        for (var i = 0; i < order.Length; i++)
        {
            order[i] = i;
        }

        var lengths = CodeLengths.ToArray();
        Array.Sort(order, (a, b) => lengths[a] != lengths[b] ? lengths[a].CompareTo(lengths[b]) : a.CompareTo(b));
        var codes = new uint[Eos + 1];
        uint code = 0;
        var previous = lengths[order[0]];
        for (var i = 0; i < order.Length; i++)
        {
            var length = lengths[order[i]];
            if (i > 0)
            {
                code = (code + 1) << (length - previous);
            }

            codes[order[i]] = code;
            previous = length;
        }

        return codes;
    }
}
