using System.CommandLine;
using EffServe.Cli.Connection;
using EffServe.Cli.Output;
using Grpc.Core;

namespace EffServe.Cli.Commands;

/// <summary>
/// Runs a command's body against an endpoint and turns every expected failure into one line on the
/// error stream (and an error document with --json) plus its exit code. Unexpected exceptions are
/// left to System.CommandLine, which prints them: they are bugs.
/// </summary>
public static class CommandRunner
{
    public static async Task<int> RunAsync(
        CliContext context,
        GlobalOptions globals,
        ParseResult parse,
        bool json,
        Func<GrpcSession, Task<int>> body,
        CancellationToken cancellationToken)
    {
        Uri? endpoint = null;
        try
        {
            endpoint = Endpoint.Resolve(parse.GetValue(globals.Endpoint), context.GetEnvironmentVariable);
            var seconds = parse.GetValue(globals.Timeout);
            TimeSpan? timeout = seconds > 0 ? TimeSpan.FromSeconds(seconds) : null;
            using var session = new GrpcSession(endpoint, context.ChannelFactory(endpoint), context.Time, timeout, cancellationToken);
            return await body(session).ConfigureAwait(false);
        }
        catch (CliException e)
        {
            return Fail(context, json, e.ExitCode, e.Message, null);
        }
        catch (RpcException e) when (endpoint is not null)
        {
            var message = e.StatusCode == StatusCode.Cancelled && cancellationToken.IsCancellationRequested
                ? "cancelled."
                : GrpcErrors.Describe(e, endpoint);
            return Fail(context, json, GrpcErrors.ExitCodeOf(e), message, GrpcErrors.CanonicalName(e.StatusCode));
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return Fail(context, json, ExitCodes.Cancelled, "cancelled.", null);
        }
    }

    /// <summary>Reports a failure: one line to the error stream, and the error document with --json.</summary>
    public static int Fail(CliContext context, bool json, int exitCode, string message, string? status)
    {
        context.Error.WriteLine("error: " + message);
        context.Error.Flush();
        if (json)
        {
            CliJson.Write(context.Out, new ErrorReport(new ErrorDetail(message, exitCode, status)));
        }

        return exitCode;
    }
}
