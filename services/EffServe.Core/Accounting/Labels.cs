namespace EffServe.Core.Accounting;

/// <summary>Where an energy figure comes from: a hardware counter, or the model of this file's section.</summary>
public enum EnergySource
{
    /// <summary>Estimated from CPU time (or device time) and configured power figures.</summary>
    Modelled,

    /// <summary>Read from a hardware energy counter (RAPL, NVML) over the run's busy window.</summary>
    Measured,
}

/// <summary>The kind of device a variant runs on, for power figures and prices.</summary>
public enum Device
{
    Cpu,
    Gpu,
}

/// <summary>The lower-case names EffServe writes in response parameters, span attributes and metric tags.</summary>
public static class AccountingLabels
{
    public const string Measured = "measured";
    public const string Modelled = "modelled";

    public static string ToLabel(this EnergySource source) => source == EnergySource.Measured ? Measured : Modelled;

    public static string ToLabel(this Device device) => device == Device.Gpu ? "gpu" : "cpu";
}

/// <summary>Response parameters EffServe writes on every successful inference (docs/protocol.md).</summary>
public static class AccountingParameters
{
    /// <summary>double: energy attributed to the request, millijoules.</summary>
    public const string EnergyMj = "effserve.energy_mj";

    /// <summary>string: <c>measured</c> or <c>modelled</c>.</summary>
    public const string EnergySource = "effserve.energy_source";

    /// <summary>double: device time attributed to the request × the device's price, US dollars.</summary>
    public const string CostUsd = "effserve.cost_usd";

    /// <summary>double: energy × PUE × grid carbon intensity, milligrams CO2-equivalent.</summary>
    public const string CarbonMg = "effserve.carbon_mg";
}
