using System.Globalization;

namespace EffServe.Core.Selection;

/// <summary>
/// How busy the machine's cores are, read from Linux's <c>/proc/stat</c>. A replica whose cores are
/// mostly busy cannot take more work without every request slowing down, so selection then breaks
/// accuracy ties towards the cheapest variant (<see cref="SloAwarePolicy"/>).
/// </summary>
public static class CpuPressure
{
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
