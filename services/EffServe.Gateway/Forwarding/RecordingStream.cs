using System.Buffers;

namespace EffServe.Gateway.Forwarding;

/// <summary>
/// Passes a request body through while keeping a copy of what was read (up to a limit), so that a
/// call whose replica failed can be sent again: the copy first, then whatever was not read yet.
/// Disposing it does nothing (the forwarder may dispose request bodies); the owner calls
/// <see cref="ReturnBuffer"/> when the call is over.
/// </summary>
internal sealed class RecordingStream(Stream inner, int limit) : Stream
{
    private byte[] _buffer = [];
    private int _length;

    /// <summary>False once the body outgrew the limit: it can no longer be replayed.</summary>
    public bool CanReplay { get; private set; } = true;

    public ReadOnlyMemory<byte> Recorded => _buffer.AsMemory(0, _length);

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var read = await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
        if (read > 0 && CanReplay)
        {
            if (_length + read > limit)
            {
                CanReplay = false;
                Release();
            }
            else
            {
                if (_length + read > _buffer.Length)
                {
                    var grown = ArrayPool<byte>.Shared.Rent(Math.Max(_length + read, Math.Min(limit, Math.Max(4096, _buffer.Length * 2))));
                    _buffer.AsSpan(0, _length).CopyTo(grown);
                    Release();
                    _buffer = grown;
                }

                buffer.Span[..read].CopyTo(_buffer.AsSpan(_length));
                _length += read;
            }
        }

        return read;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException("Read asynchronously.");

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    /// <summary>Gives the copy's buffer back to the pool; called by the owner once no replay can follow.</summary>
    public void ReturnBuffer() => Release();

    private void Release()
    {
        if (_buffer.Length > 0)
        {
            ArrayPool<byte>.Shared.Return(_buffer);
        }

        _buffer = [];
        _length = CanReplay ? _length : 0;
    }
}
