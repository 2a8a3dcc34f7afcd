using System.CommandLine;
using EffServe.Cli.Connection;

namespace EffServe.Cli.Commands;

/// <summary>Options every command takes, declared once on the root command.</summary>
public sealed class GlobalOptions
{
    public const double DefaultTimeoutSeconds = 30;

    public Option<string?> Endpoint { get; } = new("--endpoint", "-e")
    {
        Description = $"Server address: host:port or http(s)://host:port [default: ${Connection.Endpoint.EnvironmentVariable}, else {Connection.Endpoint.Display(Connection.Endpoint.Default)}]",
        HelpName = "address",
        Recursive = true,
    };

    public Option<double> Timeout { get; } = new("--timeout")
    {
        Description = "Deadline of each call in seconds; 0 for none",
        HelpName = "seconds",
        DefaultValueFactory = _ => DefaultTimeoutSeconds,
        Recursive = true,
    };

    public GlobalOptions()
    {
        Timeout.Validators.Add(result =>
        {
            var value = result.GetValueOrDefault<double>();
            if (value < 0 || double.IsNaN(value) || double.IsInfinity(value))
            {
                result.AddError("--timeout must be a number of seconds, 0 or more.");
            }
        });
    }

    /// <summary>The --json option each command declares for itself.</summary>
    public static Option<bool> CreateJson() => new("--json")
    {
        Description = "Write one JSON document to stdout instead of tables",
    };
}
