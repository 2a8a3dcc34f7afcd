using System.Globalization;

namespace EffServe.Core.Accounting;

/// <summary>
/// Configuration section EffServe:Accounting: where energy figures come from, the power model used
/// where no counter exists, prices and the carbon factors. The defaults are round, documented
/// placeholders (docs/observability.md): set them for the machines and the grid you run on.
/// </summary>
public sealed class AccountingOptions
{
    public const string SectionName = "EffServe:Accounting";

    /// <summary><c>auto</c>: hardware counters (RAPL for CPUs, NVML for GPUs) where this machine has them, the model elsewhere; <c>model</c>: always the model.</summary>
    public string EnergySource { get; set; } = "auto";

    /// <summary>Folder of the Linux powercap class, where RAPL zones appear as <c>intel-rapl:N</c>.</summary>
    public string RaplPath { get; set; } = "/sys/class/powercap";

    /// <summary>The NVIDIA management library loaded for GPU energy.</summary>
    public string NvmlLibrary { get; set; } = "libnvidia-ml.so.1";

    /// <summary>Index of the GPU whose energy counter GPU variants are charged from.</summary>
    public int GpuIndex { get; set; }

    /// <summary>
    /// Share of each run slot's time the capacity signal (effserve.capacity) plans to use: the
    /// headroom below 1 keeps queueing short enough for requests to stay within their SLO.
    /// </summary>
    public double CapacityUtilisation { get; set; } = 0.8;

    /// <summary>
    /// The machine whose idle power this process reports (tag <c>host</c> of effserve.power.idle):
    /// every process on one machine reports the same idle power under the same host, so a dashboard
    /// takes it once per host. Empty: the machine name. In Kubernetes each pod has a machine name of
    /// its own, so the chart sets it to the node's name (the downward API's <c>spec.nodeName</c>).
    /// </summary>
    public string Host { get; set; } = "";

    public CpuPowerOptions Cpu { get; set; } = new();

    public GpuPowerOptions Gpu { get; set; } = new();

    public PriceOptions Prices { get; set; } = new();

    public CarbonOptions Carbon { get; set; } = new();

    /// <summary>Every problem with the settings, each naming its configuration path; empty when they are usable.</summary>
    public IReadOnlyList<string> Validate()
    {
        const string P = SectionName;
        var problems = new List<string>();
        if (EnergySource is not ("auto" or "model"))
        {
            problems.Add($"{P}:EnergySource is '{EnergySource}'; use 'auto' (counters where present) or 'model'.");
        }

        if (string.IsNullOrWhiteSpace(RaplPath))
        {
            problems.Add($"{P}:RaplPath is empty; the default is /sys/class/powercap.");
        }

        if (string.IsNullOrWhiteSpace(NvmlLibrary))
        {
            problems.Add($"{P}:NvmlLibrary is empty; the default is libnvidia-ml.so.1.");
        }

        if (GpuIndex < 0)
        {
            problems.Add($"{P}:GpuIndex is {GpuIndex}; GPU indexes start at 0.");
        }

        if (!double.IsFinite(CapacityUtilisation) || CapacityUtilisation is <= 0 or > 1)
        {
            problems.Add($"{P}:CapacityUtilisation is {Format(CapacityUtilisation)}; it lies in (0, 1].");
        }

        NonNegative(problems, $"{P}:Cpu:WattsPerActiveCore", Cpu.WattsPerActiveCore);
        NonNegative(problems, $"{P}:Cpu:IdleWattsPerCore", Cpu.IdleWattsPerCore);
        NonNegative(problems, $"{P}:Cpu:MemoryWattsPerGiB", Cpu.MemoryWattsPerGiB);
        NonNegative(problems, $"{P}:Cpu:CounterBaselineWatts", Cpu.CounterBaselineWatts);
        NonNegative(problems, $"{P}:Gpu:ActiveWatts", Gpu.ActiveWatts);
        NonNegative(problems, $"{P}:Gpu:IdleWatts", Gpu.IdleWatts);
        NonNegative(problems, $"{P}:Gpu:CounterBaselineWatts", Gpu.CounterBaselineWatts);
        NonNegative(problems, $"{P}:Prices:UsdPerCoreHour", Prices.UsdPerCoreHour);
        NonNegative(problems, $"{P}:Prices:UsdPerGpuHour", Prices.UsdPerGpuHour);
        NonNegative(problems, $"{P}:Carbon:GridGramsPerKwh", Carbon.GridGramsPerKwh);
        if (!double.IsFinite(Carbon.Pue) || Carbon.Pue < 1)
        {
            problems.Add($"{P}:Carbon:Pue is {Format(Carbon.Pue)}; a power usage effectiveness is 1 or more (1.0: no overhead).");
        }

        return problems;
    }

    private static void NonNegative(List<string> problems, string path, double? value)
    {
        if (value is { } v && (!double.IsFinite(v) || v < 0))
        {
            problems.Add($"{path} is {Format(v)}; it must be a finite number of 0 or more.");
        }
    }

    private static string Format(double value) => value.ToString("G", CultureInfo.InvariantCulture);
}

/// <summary>The CPU power model, and the baseline taken off a RAPL counter.</summary>
public sealed class CpuPowerOptions
{
    /// <summary>Power one fully busy core adds above idle, in watts (a server core under load: 3–6 W).</summary>
    public double WattsPerActiveCore { get; set; } = 4.0;

    /// <summary>Power of an idle core, in watts; reported as idle power, never charged to requests.</summary>
    public double IdleWattsPerCore { get; set; } = 1.0;

    /// <summary>Memory power per GiB the process holds, in watts; a run is charged its run slot's share of it while it runs.</summary>
    public double MemoryWattsPerGiB { get; set; } = 0.375;

    /// <summary>
    /// With RAPL: watts taken off the counter during runs as idle power. Unset: learned from the
    /// counter over the periods when no run was in progress.
    /// </summary>
    public double? CounterBaselineWatts { get; set; }
}

/// <summary>The GPU power model (used when NVML is absent) and the baseline taken off the NVML counter.</summary>
public sealed class GpuPowerOptions
{
    /// <summary>Power a busy GPU adds above idle, in watts.</summary>
    public double ActiveWatts { get; set; } = 300;

    /// <summary>Power of an idle GPU, in watts; reported as idle power, never charged to requests.</summary>
    public double IdleWatts { get; set; } = 60;

    /// <summary>With NVML: watts taken off the counter during runs as idle power. Unset: learned from idle periods.</summary>
    public double? CounterBaselineWatts { get; set; }
}

/// <summary>What device time costs.</summary>
public sealed class PriceOptions
{
    /// <summary>US dollars per core-hour of CPU time (a cloud vCPU-hour on demand is about 0.04–0.05).</summary>
    public double UsdPerCoreHour { get; set; } = 0.048;

    /// <summary>US dollars per hour of GPU time.</summary>
    public double UsdPerGpuHour { get; set; } = 4.0;
}

/// <summary>How energy turns into emissions.</summary>
public sealed class CarbonOptions
{
    /// <summary>Power usage effectiveness of the data centre: facility energy ÷ IT energy.</summary>
    public double Pue { get; set; } = 1.2;

    /// <summary>Grid carbon intensity, grams CO2-equivalent per kWh.</summary>
    public double GridGramsPerKwh { get; set; } = 400;
}
