using EffServe.Core.Zoo;

namespace EffServe.Core.Tests.Zoo;

public sealed class ZooValidationExceptionTests
{
    [Fact]
    public void Constructor_SubjectAndProblems_ListsEveryProblemInTheMessage()
    {
        var e = new ZooValidationException("The model at /zoo/m", ["first", "second"]);

        Assert.Equal(["first", "second"], e.Problems);
        Assert.StartsWith("The model at /zoo/m has 2 problems:", e.Message, StringComparison.Ordinal);
        Assert.Contains("  - first", e.Message, StringComparison.Ordinal);
        Assert.Contains("  - second", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Constructor_OneProblem_UsesTheSingular()
    {
        var e = new ZooValidationException("The zoo", ["only"]);

        Assert.StartsWith("The zoo has 1 problem:", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Constructor_Message_IsTheOnlyProblem()
    {
        var inner = new IOException("disk");
        var e = new ZooValidationException("broken", inner);

        Assert.Equal(["broken"], e.Problems);
        Assert.Same(inner, e.InnerException);
    }
}
