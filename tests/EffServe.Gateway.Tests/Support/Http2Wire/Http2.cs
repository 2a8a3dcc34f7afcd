using System.Buffers.Binary;

namespace EffServe.Gateway.Tests.Support;

/// <summary>HTTP/2 wire constants (RFC 9113) for the tests' raw HTTP/2 client.</summary>
internal static class Http2
{
    public const int FrameHeaderLength = 9;
    public const int DefaultWindow = 65_535;
    public const int DefaultMaxFrameSize = 16_384;
    public const int MaxWindow = int.MaxValue;

    /// <summary>The client connection preface, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".</summary>
    public static ReadOnlySpan<byte> Preface => "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8;

    public static class Type
    {
        public const byte Data = 0;
        public const byte Headers = 1;
        public const byte Priority = 2;
        public const byte RstStream = 3;
        public const byte Settings = 4;
        public const byte PushPromise = 5;
        public const byte Ping = 6;
        public const byte GoAway = 7;
        public const byte WindowUpdate = 8;
        public const byte Continuation = 9;
    }

    public static class Flags
    {
        public const byte EndStream = 0x1;
        public const byte Ack = 0x1;
        public const byte EndHeaders = 0x4;
        public const byte Padded = 0x8;
        public const byte Priority = 0x20;
    }

    public static class Setting
    {
        public const ushort HeaderTableSize = 1;
        public const ushort EnablePush = 2;
        public const ushort MaxConcurrentStreams = 3;
        public const ushort InitialWindowSize = 4;
        public const ushort MaxFrameSize = 5;
        public const ushort MaxHeaderListSize = 6;
    }

    public static class Error
    {
        public const int NoError = 0;
        public const int ProtocolError = 1;
        public const int InternalError = 2;
        public const int FlowControlError = 3;
        public const int StreamClosed = 5;
        public const int FrameSizeError = 6;
        public const int RefusedStream = 7;
        public const int Cancel = 8;
        public const int CompressionError = 9;
    }

    public static void WriteFrameHeader(Span<byte> destination, int length, byte type, byte flags, int streamId)
    {
        destination[0] = (byte)(length >> 16);
        destination[1] = (byte)(length >> 8);
        destination[2] = (byte)length;
        destination[3] = type;
        destination[4] = flags;
        BinaryPrimitives.WriteInt32BigEndian(destination[5..], streamId & int.MaxValue);
    }
}

/// <summary>A connection-level protocol failure, with its HTTP/2 error <see cref="Code"/>.</summary>
internal sealed class Http2ProtocolException(int code, string message) : Exception(message)
{
    public int Code { get; } = code;
}
