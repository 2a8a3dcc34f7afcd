using System.Globalization;
using System.Text;

namespace EffServe.Inference.Rpc;

/// <summary>
/// Keeps what the service says in a status small. A status travels in the grpc-message trailer, and
/// a header block that outgrows its peer's limit (often 8 to 256 KiB) breaks the whole HTTP/2
/// connection it shares with other calls. So a list of problems names the first few and counts the
/// rest, a value a caller sent is quoted short, and no detail leaves longer than
/// <see cref="MaxBytes"/> bytes of UTF-8.
/// </summary>
internal static class StatusDetails
{
    /// <summary>Most UTF-8 bytes of one status detail.</summary>
    public const int MaxBytes = 1024;

    /// <summary>Most problems one detail lists by name.</summary>
    public const int MaxListed = 5;

    /// <summary>Most characters of a caller's value quoted back (a name, a datatype, a key).</summary>
    public const int MaxQuoted = 64;

    private const string Ellipsis = "…";

    /// <summary>Bytes kept free at the end of a list for the count of the problems left out.</summary>
    private const int CountReserve = 48;

    private static readonly UTF8Encoding s_utf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: false);

    /// <summary>
    /// <paramref name="prefix"/>, then the first problems (at most <see cref="MaxListed"/>, as many
    /// as fit in <see cref="MaxBytes"/>), then how many more there are. Every list of problems a
    /// status reports is joined here.
    /// </summary>
    public static string Problems(string prefix, IReadOnlyList<string> problems)
    {
        var text = new StringBuilder(prefix);
        var budget = MaxBytes - CountReserve - s_utf8.GetByteCount(prefix);
        var listed = 0;
        foreach (var problem in problems)
        {
            if (listed == MaxListed)
            {
                break;
            }

            var size = s_utf8.GetByteCount(problem) + 1;
            if (size > budget)
            {
                if (listed == 0)
                {
                    // The first problem is always named, cut to what is left.
                    text.Append(' ').Append(Cap(problem, Math.Max(budget - 1, 16)));
                    listed = 1;
                }

                break;
            }

            text.Append(' ').Append(problem);
            budget -= size;
            listed++;
        }

        var more = problems.Count - listed;
        if (more > 0)
        {
            text.Append(CultureInfo.InvariantCulture, $" … and {more} more problem{(more == 1 ? "" : "s")} ({problems.Count} in all).");
        }

        return Cap(text.ToString());
    }

    /// <summary><paramref name="value"/> as a status may quote it: whole when short, else its start and "…".</summary>
    public static string Quote(string value) =>
        value.Length <= MaxQuoted ? value : string.Concat(value.AsSpan(0, char.IsHighSurrogate(value[MaxQuoted - 1]) ? MaxQuoted - 1 : MaxQuoted), Ellipsis);

    /// <summary>Whether <paramref name="detail"/> is longer than a status may be.</summary>
    public static bool IsTooLong(string detail) =>
        detail.Length > MaxBytes / 3 && s_utf8.GetByteCount(detail) > MaxBytes;

    /// <summary>
    /// <paramref name="detail"/> cut to at most <paramref name="maxBytes"/> bytes of UTF-8, on a
    /// character boundary, ending in "…" when cut.
    /// </summary>
    public static string Cap(string detail, int maxBytes = MaxBytes)
    {
        if (detail.Length <= maxBytes / 3 || s_utf8.GetByteCount(detail) <= maxBytes)
        {
            return detail;
        }

        var room = maxBytes - s_utf8.GetByteCount(Ellipsis);
        var kept = 0;
        var bytes = 0;
        while (kept < detail.Length)
        {
            var width = char.IsHighSurrogate(detail[kept]) && kept + 1 < detail.Length && char.IsLowSurrogate(detail[kept + 1]) ? 2 : 1;
            var size = s_utf8.GetByteCount(detail.AsSpan(kept, width));
            if (bytes + size > room)
            {
                break;
            }

            bytes += size;
            kept += width;
        }

        return string.Concat(detail.AsSpan(0, kept), Ellipsis);
    }
}
