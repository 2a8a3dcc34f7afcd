using System.Globalization;

namespace EffServe.Core.Selection;

/// <summary>
/// How much busier the CPUs make every request: with a share <c>u</c> of the cores busy, work
/// that shares them by time slices takes about <c>1 ÷ (1 − u)</c> of its unloaded time (the
/// processor-sharing queue's mean response time). The inference service's own queue sees only the
/// runs; when request handling, the gRPC stack and neighbours saturate the cores, requests wait
/// before they ever reach that queue, and every prediction made from run times alone is too
/// optimistic by about this factor. Selection scales its predictions by it, so that a saturated
/// replica moves its tight requests to cheaper variants, which is what lowers the load.
/// </summary>
public static class CpuPressure
{
    /// <summary>Utilisation beyond which the factor stops growing (it would grow without bound at 1).</summary>
    public const double MaxUtilisation = 0.95;

    /// <summary>The slowdown at <paramref name="utilisation"/> (0–1) of the cores: 1 ÷ (1 − u), at most 20.</summary>
    public static double Slowdown(double utilisation)
    {
        if (!double.IsFinite(utilisation) || utilisation <= 0)
        {
            return 1.0;
        }

        return 1.0 / (1.0 - Math.Min(utilisation, MaxUtilisation));
    }

    /// <summary>
    /// Busy and total jiffies from the first line of Linux's <c>/proc/stat</c>
    /// (<c>cpu user nice system idle iowait irq softirq steal …</c>); idle and iowait count as not busy.
    /// </summary>
    public static bool TryParseProcStat(string firstLine, out long busy, out long total)
    {
        busy = total = 0;
        var fields = firstLine.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (fields.Length < 5 || fields[0] != "cpu")
        {
            return false;
        }

        long idle = 0;
        // user nice system idle iowait irq softirq steal (guest and guest_nice are already in user and nice)
        for (var i = 1; i < Math.Min(fields.Length, 9); i++)
        {
            if (!long.TryParse(fields[i], NumberStyles.None, CultureInfo.InvariantCulture, out var value))
            {
                return false;
            }

            total += value;
            if (i is 4 or 5)
            {
                idle += value;
            }
        }

        busy = total - idle;
        return total > 0;
    }
}
