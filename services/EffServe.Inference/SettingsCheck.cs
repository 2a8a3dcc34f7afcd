using System.Collections;
using System.ComponentModel;
using System.Globalization;
using System.Reflection;
using Microsoft.Extensions.Options;

namespace EffServe.Inference;

/// <summary>
/// Checks one configuration section before anything uses it: every value that does not convert to
/// its setting's type (<c>MaxMessageBytes=lots</c>) is named with its path and value, and the
/// section's validators run over the rest, so that one bad value hides no other problem.
/// </summary>
internal static class SettingsCheck
{
    /// <summary>Adds to <paramref name="problems"/> what is wrong with section <paramref name="sectionName"/> bound as <typeparamref name="T"/>.</summary>
    public static void Check<T>(IServiceProvider services, string sectionName, List<string> problems)
        where T : class, new()
    {
        var configuration = services.GetRequiredService<IConfiguration>();
        var section = configuration.GetSection(sectionName);
        var unconvertible = new List<(string Path, string Problem)>();
        Walk(typeof(T), section, unconvertible);
        problems.AddRange(unconvertible.Select(u => u.Problem));

        // The validators see the section without the values that did not convert (their defaults stand).
        var bad = unconvertible.Select(u => u.Path).ToHashSet(StringComparer.OrdinalIgnoreCase);
        var kept = section.AsEnumerable().Where(kv => kv.Value is not null && !bad.Contains(kv.Key));
        var options = new T();
        new ConfigurationBuilder().AddInMemoryCollection(kept).Build().GetSection(sectionName).Bind(options);
        foreach (var validator in services.GetServices<IValidateOptions<T>>())
        {
            var result = validator.Validate(Options.DefaultName, options);
            if (result.Failed)
            {
                problems.AddRange(result.Failures ?? [result.FailureMessage]);
            }
        }
    }

    private static void Walk(Type type, IConfigurationSection section, List<(string, string)> problems)
    {
        foreach (var child in section.GetChildren())
        {
            var property = type.GetProperty(child.Key, BindingFlags.Public | BindingFlags.Instance | BindingFlags.IgnoreCase);
            if (property is not null)
            {
                WalkValue(property.PropertyType, child, problems);
            }
        }
    }

    private static void WalkValue(Type type, IConfigurationSection section, List<(string, string)> problems)
    {
        var target = Nullable.GetUnderlyingType(type) ?? type;
        if (IsScalar(target))
        {
            if (section.Value is { } value && !Converts(target, value))
            {
                problems.Add((section.Path, $"{section.Path} is '{Printable(value)}'; it must be {Expected(target)}."));
            }

            return;
        }

        if (target.IsArray)
        {
            Items(target.GetElementType()!, section, problems);
            return;
        }

        if (target.IsGenericType && typeof(IEnumerable).IsAssignableFrom(target))
        {
            // List<X>, Dictionary<string, X> and the like: every child is an X (the last type argument).
            Items(target.GetGenericArguments()[^1], section, problems);
            return;
        }

        if (target.IsClass)
        {
            Walk(target, section, problems);
        }
    }

    private static void Items(Type item, IConfigurationSection section, List<(string, string)> problems)
    {
        foreach (var child in section.GetChildren())
        {
            WalkValue(item, child, problems);
        }
    }

    private static bool IsScalar(Type type) =>
        type.IsPrimitive || type.IsEnum || type == typeof(string) || type == typeof(decimal) || type == typeof(TimeSpan) || type == typeof(Uri) || type == typeof(Guid);

    private static bool Converts(Type type, string value)
    {
        if (type == typeof(string))
        {
            return true;
        }

        try
        {
            _ = TypeDescriptor.GetConverter(type).ConvertFromInvariantString(value);
            return true;
        }
        catch (Exception e) when (e is FormatException or ArgumentException or NotSupportedException or OverflowException || e.InnerException is FormatException or OverflowException)
        {
            return false;
        }
    }

    private static string Expected(Type type)
    {
        if (type.IsEnum)
        {
            return "one of " + string.Join(", ", Enum.GetNames(type));
        }

        return Type.GetTypeCode(type) switch
        {
            TypeCode.Boolean => "true or false",
            TypeCode.Int32 => string.Create(CultureInfo.InvariantCulture, $"a whole number from {int.MinValue} to {int.MaxValue}"),
            TypeCode.Int64 => "a whole number",
            TypeCode.Double or TypeCode.Single or TypeCode.Decimal => "a number (with '.' as the decimal point)",
            _ when type == typeof(TimeSpan) => "a duration such as 00:00:30",
            _ when type == typeof(Uri) => "an address (URI)",
            _ => "a " + type.Name,
        };
    }

    private static string Printable(string value)
    {
        var shown = value.Length > 64 ? value[..64] + "…" : value;
        return string.Concat(shown.Select(c => char.IsControl(c) ? '?' : c));
    }
}
