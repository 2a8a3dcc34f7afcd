namespace EffServe.Zoo;

/// <summary>What kind of problem stopped a zoo tool; the command line maps each to an exit code.</summary>
public enum ZooToolError
{
    /// <summary>An option's value is wrong on its face (a bad list, a value out of range).</summary>
    InvalidArgument,

    /// <summary>A name given on the command line (a tensor, a variant) is not in the model.</summary>
    UnknownName,

    /// <summary>The zoo, model or file asked for does not exist.</summary>
    NotFound,

    /// <summary>The target (a model folder, a variant) exists already.</summary>
    AlreadyExists,

    /// <summary>The file is not a usable ONNX model.</summary>
    InvalidModel,

    /// <summary>Data given to a tool (calibration or evaluation arrays, labels) has the wrong type or shape.</summary>
    InvalidData,

    /// <summary>The model uses an operator the tool cannot handle.</summary>
    UnsupportedOperator,

    /// <summary>The result failed the tool's own check (for example, stages that do not reproduce the model).</summary>
    VerificationFailed,
}

/// <summary>A zoo tool stopped for a reason the user can act on; the message says what and, where it can, how.</summary>
public sealed class ZooToolException : Exception
{
    public ZooToolException(ZooToolError error, string message)
        : base(message)
    {
        Error = error;
    }

    public ZooToolException(ZooToolError error, string message, Exception innerException)
        : base(message, innerException)
    {
        Error = error;
    }

    public ZooToolException()
        : this(ZooToolError.InvalidArgument, "the zoo tool failed.")
    {
    }

    public ZooToolException(string message)
        : this(ZooToolError.InvalidArgument, message)
    {
    }

    public ZooToolException(string message, Exception innerException)
        : this(ZooToolError.InvalidArgument, message, innerException)
    {
    }

    public ZooToolError Error { get; }
}
