using System.Buffers;
using EffServe.Gateway.Tests.Support;

namespace EffServe.Gateway.Tests;

/// <summary>
/// The raw test client's HPACK: the decoder against the examples of RFC 7541 Appendix C (one decoder per
/// connection direction, so the dynamic table carries from block to block), malformed blocks
/// refused with a message that names the fault, and the stateless literal encoder read back.
/// </summary>
public sealed class HpackTests
{
    private const string Date21 = "Mon, 21 Oct 2013 20:13:21 GMT";
    private const string Date22 = "Mon, 21 Oct 2013 20:13:22 GMT";
    private const string Location = "https://www.example.com";
    private const string Cookie = "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1";

    private static readonly (string, string)[] s_request1 = [(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "www.example.com")];
    private static readonly (string, string)[] s_request2 = [.. s_request1, ("cache-control", "no-cache")];
    private static readonly (string, string)[] s_request3 = [(":method", "GET"), (":scheme", "https"), (":path", "/index.html"), (":authority", "www.example.com"), ("custom-key", "custom-value")];
    private static readonly (string, string)[] s_response1 = [(":status", "302"), ("cache-control", "private"), ("date", Date21), ("location", Location)];
    private static readonly (string, string)[] s_response2 = [(":status", "307"), ("cache-control", "private"), ("date", Date21), ("location", Location)];
    private static readonly (string, string)[] s_response3 = [(":status", "200"), ("cache-control", "private"), ("date", Date22), ("location", Location), ("content-encoding", "gzip"), ("set-cookie", Cookie)];

    private static byte[] Hex(string hex) => Convert.FromHexString(string.Concat(hex.Split(' ', '\n')));

    private static List<(string, string)> Decode(HpackDecoder decoder, string hex) => Decode(decoder, Hex(hex));

    private static List<(string, string)> Decode(HpackDecoder decoder, byte[] block)
    {
        var fields = new List<HeaderField>();
        decoder.Decode(block, fields);
        return fields.ConvertAll(f => (f.Name, f.Value));
    }

    private static HpackException Refused(HpackDecoder decoder, string hex) =>
        Assert.Throws<HpackException>(() => decoder.Decode(Hex(hex), []));

    [Fact]
    public void Decode_C21LiteralWithIndexing_FieldAndDynamicEntry()
    {
        var decoder = new HpackDecoder();

        Assert.Equal([("custom-key", "custom-header")], Decode(decoder, "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572"));
        Assert.Equal([("custom-key", "custom-header")], Decode(decoder, "be")); // index 62: the newest dynamic entry
    }

    [Theory]
    [InlineData("040c 2f73 616d 706c 652f 7061 7468", ":path", "/sample/path")] // C.2.2 without indexing
    [InlineData("1008 7061 7373 776f 7264 0673 6563 7265 74", "password", "secret")] // C.2.3 never indexed
    public void Decode_C22C23LiteralNotIndexed_FieldAndEmptyDynamicTable(string hex, string name, string value)
    {
        var decoder = new HpackDecoder();

        Assert.Equal([(name, value)], Decode(decoder, hex));
        Assert.Contains("dynamic table (0 entries)", Refused(decoder, "be").Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Decode_C24IndexedField_StaticEntry()
    {
        Assert.Equal([(":method", "GET")], Decode(new HpackDecoder(), "82"));
    }

    [Fact]
    public void Decode_C3RequestsWithoutHuffman_DynamicTableCarriesAcrossBlocks()
    {
        var decoder = new HpackDecoder();

        Assert.Equal(s_request1, Decode(decoder, "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d"));
        Assert.Equal(s_request2, Decode(decoder, "8286 84be 5808 6e6f 2d63 6163 6865"));
        Assert.Equal(s_request3, Decode(decoder, "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65"));
        Assert.Equal([("custom-key", "custom-value"), ("cache-control", "no-cache"), (":authority", "www.example.com")], Decode(decoder, "bebf c0"));
    }

    [Fact]
    public void Decode_C4RequestsWithHuffman_SameFieldsAsC3()
    {
        var decoder = new HpackDecoder();

        Assert.Equal(s_request1, Decode(decoder, "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff"));
        Assert.Equal(s_request2, Decode(decoder, "8286 84be 5886 a8eb 1064 9cbf"));
        Assert.Equal(s_request3, Decode(decoder, "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf"));
        Assert.Equal([("custom-key", "custom-value"), ("cache-control", "no-cache"), (":authority", "www.example.com")], Decode(decoder, "bebf c0"));
    }

    [Fact]
    public void Decode_C5ResponsesWithoutHuffman_OldestEntriesEvicted()
    {
        var decoder = new HpackDecoder(maxTableSize: 256);

        Assert.Equal(s_response1, Decode(decoder, """
            4803 3330 3258 0770 7269 7661 7465 611d
            4d6f 6e2c 2032 3120 4f63 7420 3230 3133
            2032 303a 3133 3a32 3120 474d 546e 1768
            7474 7073 3a2f 2f77 7777 2e65 7861 6d70
            6c65 2e63 6f6d
            """));
        // ":status: 302" (the oldest) was evicted to make room for ":status: 307".
        Assert.Equal(s_response2, Decode(decoder, "4803 3330 37c1 c0bf"));
        Assert.Equal(s_response3, Decode(decoder, """
            88c1 611d 4d6f 6e2c 2032 3120 4f63 7420
            3230 3133 2032 303a 3133 3a32 3220 474d
            54c0 5a04 677a 6970 7738 666f 6f3d 4153
            444a 4b48 514b 425a 584f 5157 454f 5049
            5541 5851 5745 4f49 553b 206d 6178 2d61
            6765 3d33 3630 303b 2076 6572 7369 6f6e
            3d31
            """));
        AssertC5C6FinalTable(decoder);
    }

    [Fact]
    public void Decode_C6ResponsesWithHuffman_SameFieldsAndEvictionsAsC5()
    {
        var decoder = new HpackDecoder(maxTableSize: 256);

        Assert.Equal(s_response1, Decode(decoder, """
            4882 6402 5885 aec3 771a 4b61 96d0 7abe
            9410 54d4 44a8 2005 9504 0b81 66e0 82a6
            2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8
            e9ae 82ae 43d3
            """));
        Assert.Equal(s_response2, Decode(decoder, "4883 640e ffc1 c0bf"));
        Assert.Equal(s_response3, Decode(decoder, """
            88c1 6196 d07a be94 1054 d444 a820 0595
            040b 8166 e084 a62d 1bff c05a 839b d9ab
            77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b
            3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
            9587 3160 65c0 03ed 4ee5 b106 3d50 07
            """));
        AssertC5C6FinalTable(decoder);
    }

    /// <summary>After C.5.3 / C.6.3 the table holds exactly set-cookie, content-encoding and date (215 octets).</summary>
    private static void AssertC5C6FinalTable(HpackDecoder decoder)
    {
        Assert.Equal([("set-cookie", Cookie), ("content-encoding", "gzip"), ("date", Date22)], Decode(decoder, "bebf c0"));
        Assert.Contains("dynamic table (3 entries)", Refused(decoder, "c1").Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Decode_StaticIndexedName_ReusesTableStrings()
    {
        var decoder = new HpackDecoder();
        var first = new List<HeaderField>();
        var second = new List<HeaderField>();

        decoder.Decode(Hex("82 040c 2f73 616d 706c 652f 7061 7468"), first);
        decoder.Decode(Hex("82 0401 61"), second);

        Assert.Same(first[0].Name, second[0].Name);
        Assert.Same(first[0].Value, second[0].Value);
        Assert.Same(first[1].Name, second[1].Name);
    }

    [Fact]
    public void Decode_IndexedFields_AllocateNothing()
    {
        var decoder = new HpackDecoder();
        var block = Hex("4001 61 0162 8286 84be"); // a: b enters the dynamic table, then static and dynamic indices
        var fields = new List<HeaderField>(64);
        decoder.Decode(block, fields);
        var indexed = Hex("8286 84be 8287 85be");
        decoder.Decode(indexed, fields); // warm up

        var before = GC.GetAllocatedBytesForCurrentThread();
        decoder.Decode(indexed, fields);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal(0, allocated);
        Assert.Equal(("a", "b"), (fields[^1].Name, fields[^1].Value));
    }

    [Fact]
    public void Decode_AppendsToExistingList_InOrder()
    {
        var fields = new List<HeaderField> { new("x-before", "1") };

        new HpackDecoder().Decode(Hex("8287"), fields);

        Assert.Equal([new("x-before", "1"), new(":method", "GET"), new(":scheme", "https")], fields);
    }

    [Fact]
    public void Decode_SizeUpdateAtStart_ShrinksAndEmptiesTable()
    {
        var decoder = new HpackDecoder();
        Decode(decoder, "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572");

        Assert.Equal([(":method", "GET")], Decode(decoder, "20 3f e1 1f 82")); // to 0, then back to 4096, then a field
        Assert.Contains("index 62", Refused(decoder, "be").Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Decode_EntryLargerThanTable_EmptiesTableAndIsNotAdded()
    {
        var decoder = new HpackDecoder(maxTableSize: 40);
        Decode(decoder, "4001 61 0162"); // a: b, 34 octets

        Assert.Equal([("custom-key", "custom-header")], Decode(decoder, "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572"));
        Assert.Contains("dynamic table (0 entries)", Refused(decoder, "be").Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("80", "index 0")]
    [InlineData("be", "index 62 is beyond")]
    [InlineData("ff", "ends inside an integer")]
    [InlineData("ff 80 80", "ends inside an integer")]
    [InlineData("ff ff ff ff ff 0f", "exceeds 2^31-1")]
    [InlineData("ff 80 80 80 80 80 00", "more continuation octets")]
    [InlineData("40", "ends before a string literal")]
    [InlineData("400a 6375 7374", "10 octets runs past the end")]
    [InlineData("040c 2f73", "12 octets runs past the end")]
    [InlineData("0481 00", "padding is not all one bits")] // '0' (00000) then 000
    [InlineData("0481 ff", "8 bits of padding")]
    [InlineData("0482 1fff", "11 bits of padding")] // 'a' (00011) then eleven ones
    [InlineData("0484 ffff ffff", "EOS")]
    [InlineData("0485 1fff ffff ff", "EOS")] // 'a', then EOS, then ones
    [InlineData("3f e2 1f", "asks for 4097 octets, above the 4096")]
    [InlineData("82 20", "after a header field")]
    public void Decode_MalformedBlock_HpackExceptionNamingTheFault(string hex, string expected)
    {
        var error = Refused(new HpackDecoder(), hex);

        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Decode_SizeUpdateToAdvertisedMax_Accepted()
    {
        Assert.Equal([(":method", "GET")], Decode(new HpackDecoder(), "3f e1 1f 82"));
    }

    [Fact]
    public void Decode_HeaderListOverLimit_Refused()
    {
        var decoder = new HpackDecoder(maxHeaderListBytes: 22);

        var error = Refused(decoder, "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572"); // 10 + 13 octets

        Assert.Contains("more than 22 octets", error.Message, StringComparison.Ordinal);
        Assert.Equal([("custom-key", "custom-header")], Decode(new HpackDecoder(maxHeaderListBytes: 23), "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572"));
    }

    [Fact]
    public void Decode_HuffmanRareSymbols_DecodedAsLatin1()
    {
        // Codes from RFC 7541 Appendix B: 0 (1ff8, 13 bits), 255 (3ffffee, 26), 128 (fffe6, 20),
        // 'A' (21, 6), 10 (3ffffffc, 30), 'z' (7b, 7).
        var value = Huffman((0x1ff8, 13), (0x3ffffee, 26), (0xfffe6, 20), (0x21, 6), (0x3ffffffc, 30), (0x7b, 7));
        byte[] block = [0x04, (byte)(0x80 | value.Length), .. value];

        Assert.Equal([(":path", "\0\u00ff\u0080A\nz")], Decode(new HpackDecoder(), block));
    }

    [Fact]
    public void Decode_LongHuffmanString_Decoded()
    {
        // 400 '0' symbols (00000) are 250 zero octets: longer than the decoder's stack buffer.
        byte[] block = [0x04, 0xff, 250 - 127, .. new byte[250]]; // Huffman, length 127 + 123

        Assert.Equal([(":path", new string('0', 400))], Decode(new HpackDecoder(), block));
    }

    /// <summary>Packs codes most significant bit first and pads the last octet with ones (a prefix of EOS).</summary>
    private static byte[] Huffman(params (uint Code, int Length)[] codes)
    {
        var bits = new List<bool>();
        foreach (var (code, length) in codes)
        {
            for (var bit = length - 1; bit >= 0; bit--)
            {
                bits.Add(((code >> bit) & 1) != 0);
            }
        }

        while (bits.Count % 8 != 0)
        {
            bits.Add(true);
        }

        var bytes = new byte[bits.Count / 8];
        for (var i = 0; i < bits.Count; i++)
        {
            if (bits[i])
            {
                bytes[i / 8] |= (byte)(0x80 >> (i % 8));
            }
        }

        return bytes;
    }

    [Theory]
    [InlineData(":method", "POST", "83")]
    [InlineData(":scheme", "http", "86")]
    [InlineData(":status", "200", "88")]
    [InlineData(":authority", "", "81")]
    [InlineData(":path", "/sample/path", "040c 2f73 616d 706c 652f 7061 7468")] // static name, as C.2.2
    [InlineData(":status", "201", "0803 3230 31")] // first :status entry names it
    [InlineData("content-type", "application/grpc", "0f10 1061 7070 6c69 6361 7469 6f6e 2f67 7270 63")] // index 31: two-octet prefix
    [InlineData("custom-key", "custom-header", "000a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572")] // new name, as C.2.1 unindexed
    [InlineData("x-empty", "", "0007 782d 656d 7074 7900")]
    public void Write_Field_ExactBytes(string name, string value, string hex)
    {
        var output = new ArrayBufferWriter<byte>();

        HpackEncoder.Write(output, name, value);

        Assert.Equal(Hex(hex), output.WrittenSpan.ToArray());
    }

    [Fact]
    public void Write_IndexedAndLiteralFields_AllocateNothing()
    {
        var output = new ArrayBufferWriter<byte>(4096);
        WriteRequest(output); // warm up
        output.ResetWrittenCount();

        var before = GC.GetAllocatedBytesForCurrentThread();
        WriteRequest(output);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal(0, allocated);

        static void WriteRequest(ArrayBufferWriter<byte> output)
        {
            HpackEncoder.Write(output, ":method", "POST");
            HpackEncoder.Write(output, ":path", "/inference.GRPCInferenceService/ModelInfer");
            HpackEncoder.Write(output, "content-type", "application/grpc");
            HpackEncoder.Write(output, "te", "trailers");
        }
    }

    [Fact]
    public void Write_LongValue_MultiOctetLength()
    {
        var output = new ArrayBufferWriter<byte>();

        HpackEncoder.Write(output, "x-long", new string('v', 300));

        // Name "x-long" as a new name, then the value's length 300 = 127 + 173: 7f, ad, 01.
        Assert.Equal(Hex("0006 782d 6c6f 6e67 7fad 01"), output.WrittenSpan[..11].ToArray());
        Assert.Equal(11 + 300, output.WrittenCount);
    }

    [Fact]
    public void Write_ThenDecode_SameFieldsAndNoDynamicEntries()
    {
        (string, string)[] fields =
        [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", "/inference.GRPCInferenceService/ModelInfer"),
            (":authority", "localhost:5000"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
            ("grpc-timeout", "2S"),
            ("x-empty", ""),
            ("x-long", new string('v', 300)),
            ("x-latin1", "caf\u00e9"),
            (":status", "200"),
        ];
        var output = new ArrayBufferWriter<byte>();
        foreach (var (name, value) in fields)
        {
            HpackEncoder.Write(output, name, value);
        }

        var decoder = new HpackDecoder();

        Assert.Equal(fields, Decode(decoder, output.WrittenSpan.ToArray()));
        Assert.Contains("dynamic table (0 entries)", Refused(decoder, "be").Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Write_ValueBeyondLatin1_ArgumentExceptionAndNothingWritten()
    {
        var output = new ArrayBufferWriter<byte>();

        Assert.Throws<ArgumentException>(() => HpackEncoder.Write(output, "x-name", "\u20ac"));

        Assert.Equal(0, output.WrittenCount);
    }
}
