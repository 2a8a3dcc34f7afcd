namespace EffServe.Core.Zoo;

/// <summary>A zoo or manifest that cannot be served, with every problem found and where it is.</summary>
public sealed class ZooValidationException : Exception
{
    public ZooValidationException(string subject, IReadOnlyList<string> problems)
        : base(Describe(subject, problems))
    {
        Problems = problems;
    }

    public ZooValidationException()
        : this("the zoo", [])
    {
    }

    public ZooValidationException(string message)
        : base(message)
    {
        Problems = [message];
    }

    public ZooValidationException(string message, Exception innerException)
        : base(message, innerException)
    {
        Problems = [message];
    }

    public IReadOnlyList<string> Problems { get; } = [];

    private static string Describe(string subject, IReadOnlyList<string> problems) =>
        $"{subject} has {problems.Count} problem{(problems.Count == 1 ? "" : "s")}:" + Environment.NewLine +
        string.Join(Environment.NewLine, problems.Select(p => "  - " + p));
}
