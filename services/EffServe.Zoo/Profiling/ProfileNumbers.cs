using System.Globalization;

namespace EffServe.Zoo.Profiling;

/// <summary>
/// How measured numbers are rounded for the manifest and written: invariant culture, never an
/// exponent. Times and rates keep four significant digits (more would be noise on a shared
/// machine); accuracies six decimals (exact to one sample in a million); mean stages four.
/// </summary>
public static class ProfileNumbers
{
    public const int TimeDigits = 4;
    public const int AccuracyDecimals = 6;
    public const int StageDecimals = 4;

    /// <summary>Rounds to <paramref name="digits"/> significant digits (half away from zero).</summary>
    public static double RoundSignificant(double value, int digits)
    {
        if (value == 0 || !double.IsFinite(value))
        {
            return value;
        }

        var magnitude = (int)Math.Floor(Math.Log10(Math.Abs(value)));
        var decimals = digits - 1 - magnitude;
        if (decimals >= 0)
        {
            return Math.Round(value, Math.Min(decimals, 15), MidpointRounding.AwayFromZero);
        }

        var scale = Math.Pow(10, -decimals);
        return Math.Round(value / scale, MidpointRounding.AwayFromZero) * scale;
    }

    public static double Time(double value) => RoundSignificant(value, TimeDigits);

    public static double Accuracy(double value) => Math.Round(value, AccuracyDecimals, MidpointRounding.AwayFromZero);

    public static double Stages(double value) => Math.Round(value, StageDecimals, MidpointRounding.AwayFromZero);

    public static double Threshold(double value) => Math.Round(value, 6, MidpointRounding.AwayFromZero);

    /// <summary>A number as the manifest writes it: invariant, shortest form, no exponent.</summary>
    public static string Format(double value) => double.IsFinite(value)
        ? value.ToString("0.###############", CultureInfo.InvariantCulture)
        : throw new ArgumentOutOfRangeException(nameof(value), value, "Only finite numbers are written.");

    public static string Format(int value) => value.ToString(CultureInfo.InvariantCulture);
}
