using EffServe.Cli.Output;
using EffServe.Core.Zoo;
using EffServe.Zoo;
using Spectre.Console;

namespace EffServe.Cli.Commands.Zoo;

/// <summary>
/// Runs a zoo tool: draws progress bars while it works (on a terminal only, and not with --json,
/// whose stdout carries one document), writes its result, and turns every expected failure into
/// one error line and the exit code scripts rely on.
/// </summary>
internal static class ZooCommandRunner
{
    public static int Run<T>(CliContext context, bool json, Func<IToolProgress, CancellationToken, T> work, Action<T> render, Action<T> write, CancellationToken cancellationToken)
    {
        try
        {
            T result;
            if (json || !context.Console.Profile.Capabilities.Interactive)
            {
                // Progress bars only on a terminal: piped, they would leave lines such as a lone "0%".
                result = work(SilentProgress.Instance, cancellationToken);
            }
            else
            {
                result = context.Console.Progress()
                    .AutoClear(true)
                    .HideCompleted(false)
                    .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new SpinnerColumn())
                    .Start(progress => work(new SpectreProgress(progress), cancellationToken));
            }

            if (json)
            {
                write(result);
            }
            else
            {
                render(result);
            }

            return ExitCodes.Success;
        }
        catch (ZooToolException e)
        {
            return CommandRunner.Fail(context, json, ExitCodeOf(e.Error), e.Message, null);
        }
        catch (ZooValidationException e)
        {
            return CommandRunner.Fail(context, json, ExitCodes.InvalidInput, e.Message, null);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return CommandRunner.Fail(context, json, ExitCodes.Cancelled, "cancelled; nothing was written.", null);
        }
        catch (InvalidDataException e)
        {
            // A tensor or file whose contents contradict its own description.
            return CommandRunner.Fail(context, json, ExitCodes.InvalidInput, e.Message, null);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return CommandRunner.Fail(context, json, ExitCodes.InvalidInput, e.Message, null);
        }
    }

    /// <summary>The exit code of each kind of zoo tool failure.</summary>
    public static int ExitCodeOf(ZooToolError error) => error switch
    {
        ZooToolError.InvalidArgument or ZooToolError.UnknownName or ZooToolError.AlreadyExists => ExitCodes.Usage,
        ZooToolError.NotFound => ExitCodes.NotFound,
        _ => ExitCodes.InvalidInput,
    };

    /// <summary>Writes a --json document of a zoo command.</summary>
    public static void WriteJson<T>(CliContext context, T report, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type)
    {
        context.Out.WriteLine(System.Text.Json.JsonSerializer.Serialize(report, type));
        context.Out.Flush();
    }

    private sealed class SpectreProgress(ProgressContext context) : IToolProgress
    {
        public IProgressStep Start(string description, double total) =>
            new Step(context.AddTask(Markup.Escape(description), maxValue: Math.Max(total, 1)));
    }

    private sealed class Step(ProgressTask task) : IProgressStep
    {
        public void Advance(double amount) => task.Increment(amount);

        public void Dispose()
        {
            task.Value = task.MaxValue;
            task.StopTask();
        }
    }
}
