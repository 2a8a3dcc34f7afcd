namespace EffServe.Zoo.Data;

internal static class RandomExtensions
{
    /// <summary>A standard normal sample (Box-Muller); deterministic for a seeded <see cref="Random"/>.</summary>
    public static double NextGaussian(this Random random)
    {
        // 1 - NextDouble() lies in (0, 1], so the logarithm stays finite.
        var u = 1.0 - random.NextDouble();
        var v = random.NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u)) * Math.Cos(2.0 * Math.PI * v);
    }
}
