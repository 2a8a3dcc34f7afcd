using System.Buffers;

namespace EffServe.Gateway.Forwarding;

/// <summary>
/// A read-only stream over bytes already in memory (a request the gateway holds): the forwarder
/// sends it without copying, and a retry reads the same bytes again through a new instance.
/// Disposing it leaves the bytes alone; their owner releases them.
/// </summary>
internal sealed class SequenceStream(ReadOnlySequence<byte> data) : ReadOnlyBodyStream
{
    private readonly long _length = data.Length;
    private ReadOnlySequence<byte> _left = data;

    public override long Length => _length;

    public override long Position
    {
        get => _length - _left.Length;
        set => throw new NotSupportedException();
    }

    public override int Read(Span<byte> buffer)
    {
        var count = (int)Math.Min(buffer.Length, _left.Length);
        _left.Slice(0, count).CopyTo(buffer);
        _left = _left.Slice(count);
        return count;
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        cancellationToken.IsCancellationRequested ? ValueTask.FromCanceled<int>(cancellationToken) : ValueTask.FromResult(Read(buffer.Span));
}
