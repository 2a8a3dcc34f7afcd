using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace EffServe.ServiceDefaults;

/// <summary>
/// Starts a host and keeps it running until it is told to stop. A port that something else holds is
/// an operator's mistake, not a crash: it is told in one line (the address, which part of EffServe,
/// how to choose another) and the process ends with <see cref="PortInUseExitCode"/>, no stack trace.
/// </summary>
public static partial class HostStartup
{
    /// <summary>The exit status of a host that could not listen because a port was taken.</summary>
    public const int PortInUseExitCode = 3;

    /// <summary>The exit status of a host whose start failed for another reason (logged with its exception).</summary>
    public const int StartFailedExitCode = 1;

    private const string HostCategory = "Microsoft.Extensions.Hosting.Internal.Host";

    /// <summary>
    /// Hides the generic host's own "Hosting failed to start" entry (a full stack trace) while
    /// <see cref="ServeAsync"/> starts the host; it reports the failure itself.
    /// </summary>
    internal static void AddStartupLogGate(this WebApplicationBuilder builder)
    {
        var gate = new StartupLogGate();
        builder.Services.AddSingleton(gate);
        builder.Logging.AddFilter(HostCategory, level => level >= LogLevel.Information && !(gate.Starting && level >= LogLevel.Error));
    }

    /// <summary>
    /// Starts <paramref name="app"/> and waits until it stops; returns the process's exit status.
    /// </summary>
    /// <param name="app">The host.</param>
    /// <param name="part">Which part of EffServe this is, for the message ("the gateway").</param>
    /// <param name="howToMove">How to choose another port for the host's own listener (--urls).</param>
    public static async Task<int> ServeAsync(this WebApplication app, string part, string howToMove)
    {
        ArgumentNullException.ThrowIfNull(app);
        var gate = app.Services.GetService<StartupLogGate>();
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("EffServe.Startup");
        try
        {
            if (gate is not null)
            {
                gate.Starting = true;
            }

            await app.StartAsync().ConfigureAwait(false);
        }
        catch (PortInUseException e)
        {
            Log.PortInUse(logger, e.Address, $"{part}'s metrics listener", $"choose another with {e.Setting}");
            return PortInUseExitCode;
        }
        catch (IOException e) when (IsAddressInUse(e))
        {
            Log.PortInUse(logger, AddressIn(e) ?? string.Join(", ", app.Urls), part, howToMove);
            return PortInUseExitCode;
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            Log.StartFailed(logger, part, e);
            return StartFailedExitCode;
        }
        finally
        {
            if (gate is not null)
            {
                gate.Starting = false;
            }
        }

        await app.WaitForShutdownAsync().ConfigureAwait(false);
        return 0;
    }

    /// <summary>Whether <paramref name="e"/> or an exception inside it says the address is already in use.</summary>
    public static bool IsAddressInUse(Exception e)
    {
        for (Exception? inner = e; inner is not null; inner = inner.InnerException)
        {
            if (inner is AddressInUseException or PortInUseException)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>The address in Kestrel's "Failed to bind to address ADDRESS: address already in use." message.</summary>
    internal static string? AddressIn(Exception e)
    {
        var match = BindFailure().Match(e.Message);
        return match.Success ? match.Groups["address"].Value : null;
    }

    [GeneratedRegex(@"address (?<address>\S+): address already in use", RegexOptions.CultureInvariant)]
    private static partial Regex BindFailure();

    internal sealed class StartupLogGate
    {
        public volatile bool Starting;
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 1, Level = LogLevel.Critical, Message = "{Address} is already in use, so {Part} cannot listen there; {HowToMove}")]
        public static partial void PortInUse(ILogger logger, string address, string part, string howToMove);

        [LoggerMessage(EventId = 2, Level = LogLevel.Critical, Message = "{Part} failed to start")]
        public static partial void StartFailed(ILogger logger, string part, Exception exception);
    }
}
