namespace EffServe.ServiceDefaults;

/// <summary>
/// A listener of the host could not bind its address because something else holds the port.
/// <see cref="Setting"/> names what chooses that address, so the message can say how to pick another.
/// </summary>
public sealed class PortInUseException : IOException
{
    public PortInUseException()
    {
    }

    public PortInUseException(string message)
        : base(message)
    {
    }

    public PortInUseException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    public PortInUseException(string address, string setting, Exception? innerException)
        : base($"{address} is already in use ({setting}).", innerException)
    {
        Address = address;
        Setting = setting;
    }

    /// <summary>The address asked for, e.g. http://127.0.0.1:9464.</summary>
    public string Address { get; } = "";

    /// <summary>The setting that chose it, e.g. EffServe:Telemetry:MetricsUrl.</summary>
    public string Setting { get; } = "";
}
