namespace EffServe.Cli;

/// <summary>
/// Every exit status `effserve` returns, in one place. Scripts may rely on these numbers; add new
/// ones at the end and never renumber.
/// </summary>
public static class ExitCodes
{
    /// <summary>The command did what was asked.</summary>
    public const int Success = 0;

    /// <summary>The command line is wrong: unknown or conflicting options, a value out of range.</summary>
    public const int Usage = 1;

    /// <summary>The endpoint could not be reached, or the server failed the call.</summary>
    public const int ServerError = 2;

    /// <summary>The server does not serve the model or version asked for.</summary>
    public const int NotFound = 3;

    /// <summary>
    /// The input is unusable: a local file that is missing or unreadable, a shape or datatype the
    /// model does not take, or a request the server rejected as invalid.
    /// </summary>
    public const int InvalidInput = 4;

    /// <summary>The endpoint does not offer what the command needs (the RPC is unimplemented).</summary>
    public const int Unsupported = 5;

    /// <summary>The user interrupted the command (Ctrl+C), as shells expect.</summary>
    public const int Cancelled = 130;
}
