using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using EffServe.Core.Tensors;

namespace EffServe.Core.Caching;

/// <summary>
/// The response cache's key: a SHA-256 over everything that can change an answer, each part framed
/// by a tag and its length so that no two different requests frame to the same bytes. Inputs are
/// hashed in their decoded form (row-major little-endian elements), so the same tensor sent as raw
/// or as typed contents gives the same key, and in name order, so the order of inputs in a request
/// does not matter. SHA-256 rather than a faster non-cryptographic hash: a collision would serve one
/// input's answer for another, possibly across tenants sharing the Redis, and SHA-256 (hardware
/// accelerated on x64 and ARM64) hashes at gigabytes per second, far above the inference it saves.
/// </summary>
public static class CacheKey
{
    /// <summary>Bytes of a key.</summary>
    public const int Length = 32;

    private const byte ModelTag = 1;
    private const byte InputTag = 2;
    private const byte OutputTag = 3;
    private const byte VariantTag = 4;
    private const byte ThresholdTag = 5;
    private const byte ElementTag = 6;

    /// <summary>
    /// The key of a request, as lowercase hex: the model's name, version and zoo revision (a hash of
    /// its manifest and files), the inputs, the outputs to compute in their order, and the
    /// parameters that change the answer (a pinned variant, an early-exit threshold).
    /// </summary>
    public static string Compute(CacheKeyParts parts)
    {
        ArgumentNullException.ThrowIfNull(parts);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        Text(hash, ModelTag, parts.Model);
        Text(hash, ModelTag, parts.Version);
        Text(hash, ModelTag, parts.Revision);
        Span<byte> dims = stackalloc byte[8];
        foreach (var input in parts.Inputs.OrderBy(i => i.Name, StringComparer.Ordinal))
        {
            Text(hash, InputTag, input.Name);
            Text(hash, InputTag, input.DataType.ToWireName());
            Frame(hash, InputTag, input.Shape.Length * 8L);
            foreach (var d in input.Shape)
            {
                BinaryPrimitives.WriteInt64LittleEndian(dims, d);
                hash.AppendData(dims);
            }

            if (input.Strings is { } strings)
            {
                Frame(hash, InputTag, strings.Count);
                foreach (var s in strings)
                {
                    Frame(hash, ElementTag, s.Length);
                    hash.AppendData(s.Span);
                }
            }
            else
            {
                Frame(hash, InputTag, input.Data.Length);
                hash.AppendData(input.Data.Span);
            }
        }

        foreach (var output in parts.Outputs)
        {
            Text(hash, OutputTag, output);
        }

        Text(hash, VariantTag, parts.Variant ?? "");
        Frame(hash, ThresholdTag, parts.ExitThreshold is { } t ? BitConverter.DoubleToInt64Bits(t) : -1);
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    private static void Text(IncrementalHash hash, byte tag, string value)
    {
        var bytes = Encoding.UTF8.GetBytes(value);
        Frame(hash, tag, bytes.Length);
        hash.AppendData(bytes);
    }

    private static void Frame(IncrementalHash hash, byte tag, long length)
    {
        Span<byte> frame = stackalloc byte[9];
        frame[0] = tag;
        BinaryPrimitives.WriteInt64LittleEndian(frame[1..], length);
        hash.AppendData(frame);
    }
}

/// <summary>What a cache key covers (see <see cref="CacheKey.Compute"/>).</summary>
/// <param name="Model">The model's name.</param>
/// <param name="Version">The model's version.</param>
/// <param name="Revision">The zoo revision: a hash of the model's manifest and files.</param>
/// <param name="Inputs">The request's inputs, decoded and validated.</param>
/// <param name="Outputs">The outputs to compute, in the order the response lists them.</param>
/// <param name="Variant">The pinned variant (effserve.variant), if any.</param>
/// <param name="ExitThreshold">The requested early-exit threshold (effserve.exit_threshold), if any.</param>
public sealed record CacheKeyParts(
    string Model,
    string Version,
    string Revision,
    IReadOnlyList<NamedTensor> Inputs,
    IReadOnlyList<string> Outputs,
    string? Variant,
    double? ExitThreshold);
