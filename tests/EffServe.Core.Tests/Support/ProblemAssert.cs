using EffServe.Core.Zoo;

namespace EffServe.Core.Tests.Support;

/// <summary>Assertions on the problems a <see cref="ZooValidationException"/> reports.</summary>
internal static class ProblemAssert
{
    /// <summary>Loads the model copy and returns the validation exception it must throw.</summary>
    public static ZooValidationException LoadFails(DigitsModelCopy model, IGraphReader graphs) =>
        Assert.Throws<ZooValidationException>(() => new ZooLoader(graphs).LoadModel(model.ModelDirectory));

    /// <summary>
    /// Asserts that one problem is located at <paramref name="key"/> of the manifest (an empty key
    /// means the manifest as a whole) and contains every fragment; returns that problem.
    /// </summary>
    public static string Has(ZooValidationException e, string manifestPath, string key, params string[] fragments)
    {
        var prefix = key.Length == 0 ? $"{manifestPath}: " : $"{manifestPath}: {key}: ";
        var match = e.Problems.FirstOrDefault(p =>
            p.StartsWith(prefix, StringComparison.Ordinal) && fragments.All(f => p.Contains(f, StringComparison.Ordinal)));
        if (match is null)
        {
            Assert.Fail(
                $"No problem starts with '{prefix}' and contains [{string.Join(" | ", fragments)}]. Problems:"
                + Environment.NewLine + string.Join(Environment.NewLine, e.Problems));
        }

        return match!;
    }

    /// <summary>Asserts that no problem is located at <paramref name="key"/>.</summary>
    public static void HasNone(ZooValidationException e, string manifestPath, string key)
    {
        var prefix = $"{manifestPath}: {key}";
        Assert.DoesNotContain(e.Problems, p => p.StartsWith(prefix, StringComparison.Ordinal));
    }
}
