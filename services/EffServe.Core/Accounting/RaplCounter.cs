using System.Globalization;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace EffServe.Core.Accounting;

/// <summary>
/// CPU energy from Linux's powercap RAPL zones: every package zone (<c>intel-rapl:N</c>) and every
/// DRAM sub-zone (<c>intel-rapl:N:M</c> named <c>dram</c>). Each zone's <c>energy_uj</c> counts
/// microjoules up to <c>max_energy_range_uj</c> and then starts again from zero; a reading adds the
/// difference since the last one, across the wrap. A wrap is seen only if the counter is read at
/// least once per wrap period (minutes at full power), which the periodic poll ensures.
/// </summary>
public sealed class RaplCounter : IEnergyCounter
{
    private readonly Zone[] _zones;
    private readonly object _lock = new();
    private long _totalMicrojoules;

    private RaplCounter(Zone[] zones)
    {
        _zones = zones;
        Description = string.Join(", ", zones.Select(z => $"{z.Folder} ({z.Label})"));
    }

    public string Name => "rapl";

    public Device Device => Device.Cpu;

    public string Description { get; }

    /// <summary>
    /// Opens the RAPL zones under <paramref name="powercapPath"/>; null, with the reason, when there
    /// are none or they cannot be read (since 2020 Linux lets only root read <c>energy_uj</c>).
    /// </summary>
    public static RaplCounter? TryOpen(string powercapPath, out string reason)
    {
        if (!Directory.Exists(powercapPath))
        {
            reason = $"{powercapPath} does not exist (no powercap driver)";
            return null;
        }

        var zones = new List<Zone>();
        try
        {
            foreach (var folder in Directory.EnumerateDirectories(powercapPath, "intel-rapl:*").Order(StringComparer.Ordinal))
            {
                var name = Path.GetFileName(folder);
                var depth = name.Count(c => c == ':');
                var label = ReadText(Path.Combine(folder, "name")) ?? name;
                // Packages, and DRAM beside them; cores and uncore are already inside their package.
                if (depth == 1 || (depth == 2 && label == "dram"))
                {
                    zones.Add(Zone.Open(folder, name, label));
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            foreach (var zone in zones)
            {
                zone.Dispose();
            }

            reason = $"RAPL zones under {powercapPath} cannot be read: {e.Message}";
            return null;
        }

        if (zones.Count == 0)
        {
            reason = $"no intel-rapl zone under {powercapPath}";
            return null;
        }

        reason = "";
        return new RaplCounter([.. zones]);
    }

    public long ReadNanojoules()
    {
        lock (_lock)
        {
            foreach (var zone in _zones)
            {
                _totalMicrojoules += zone.Advance();
            }

            return _totalMicrojoules * 1000;
        }
    }

    public void Dispose()
    {
        foreach (var zone in _zones)
        {
            zone.Dispose();
        }
    }

    private static string? ReadText(string path) => File.Exists(path) ? File.ReadAllText(path).Trim() : null;

    /// <summary>One zone: its counter file kept open and read again from offset 0 each time.</summary>
    private sealed class Zone : IDisposable
    {
        private readonly SafeFileHandle _energy;
        private readonly long _range;
        private readonly byte[] _buffer = new byte[32];
        private long _last;

        private Zone(string folder, string label, SafeFileHandle energy, long range)
        {
            Folder = folder;
            Label = label;
            _energy = energy;
            _range = range;
            _last = Read();
        }

        public string Folder { get; }

        public string Label { get; }

        public static Zone Open(string path, string folder, string label)
        {
            var range = long.Parse(File.ReadAllText(Path.Combine(path, "max_energy_range_uj")).Trim(), NumberStyles.None, CultureInfo.InvariantCulture);
            var handle = File.OpenHandle(Path.Combine(path, "energy_uj"));
            try
            {
                return new Zone(folder, label, handle, range);
            }
            catch
            {
                handle.Dispose();
                throw;
            }
        }

        /// <summary>Microjoules since the last reading, across one wrap of the register; 0 when the file cannot be read now.</summary>
        public long Advance()
        {
            if (!TryRead(out var now))
            {
                return 0;
            }

            var delta = now >= _last ? now - _last : _range - _last + now;
            _last = now;
            return delta;
        }

        public void Dispose() => _energy.Dispose();

        private long Read() =>
            TryRead(out var value) ? value : throw new FormatException($"{Folder}/energy_uj does not hold a number of microjoules.");

        private bool TryRead(out long microjoules)
        {
            var read = RandomAccess.Read(_energy, _buffer, 0);
            return long.TryParse(Encoding.ASCII.GetString(_buffer, 0, read).AsSpan().Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out microjoules);
        }
    }
}
