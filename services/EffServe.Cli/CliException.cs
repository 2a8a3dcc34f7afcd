namespace EffServe.Cli;

/// <summary>
/// A failure the command reports as one line and an exit code, without a stack trace: the message
/// says what went wrong and, where it can, what to do about it.
/// </summary>
public sealed class CliException : Exception
{
    public CliException(int exitCode, string message)
        : base(message)
    {
        ExitCode = exitCode;
    }

    public CliException(int exitCode, string message, Exception innerException)
        : base(message, innerException)
    {
        ExitCode = exitCode;
    }

    public CliException()
        : this(ExitCodes.ServerError, "the command failed.")
    {
    }

    public CliException(string message)
        : this(ExitCodes.ServerError, message)
    {
    }

    public CliException(string message, Exception innerException)
        : this(ExitCodes.ServerError, message, innerException)
    {
    }

    public int ExitCode { get; }

    public static CliException Usage(string message) => new(ExitCodes.Usage, message);

    public static CliException InvalidInput(string message) => new(ExitCodes.InvalidInput, message);

    public static CliException InvalidInput(string message, Exception innerException) => new(ExitCodes.InvalidInput, message, innerException);
}
