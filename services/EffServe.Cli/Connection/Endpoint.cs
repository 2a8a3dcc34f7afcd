namespace EffServe.Cli.Connection;

/// <summary>
/// Turns what a user types for --endpoint (or sets in EFFSERVE_ENDPOINT) into the address a gRPC
/// channel dials. Accepted: <c>http://host:port</c>, <c>https://host:port</c>, <c>host:port</c>,
/// <c>host</c> (port 8001) and a bare port (localhost). Without a scheme the connection is
/// plaintext HTTP/2 (h2c), as the inference server listens by default.
/// </summary>
public static class Endpoint
{
    public const string EnvironmentVariable = "EFFSERVE_ENDPOINT";

    public const int DefaultPort = 8001;

    public static readonly Uri Default = new($"http://localhost:{DefaultPort}");

    /// <summary>
    /// The address to dial: the option when given, else the environment variable when set, else
    /// <see cref="Default"/>.
    /// </summary>
    /// <exception cref="CliException">The text is not an address (exit code: usage).</exception>
    public static Uri Resolve(string? option, Func<string, string?> getEnvironmentVariable)
    {
        if (!string.IsNullOrWhiteSpace(option))
        {
            return Parse(option, "--endpoint");
        }

        var fromEnvironment = getEnvironmentVariable(EnvironmentVariable);
        return string.IsNullOrWhiteSpace(fromEnvironment) ? Default : Parse(fromEnvironment, EnvironmentVariable);
    }

    /// <summary>Parses one endpoint text; <paramref name="source"/> names where it came from, for the message.</summary>
    public static Uri Parse(string text, string source = "--endpoint")
    {
        var value = text.Trim();
        if (value.Contains("://", StringComparison.Ordinal))
        {
            if (!Uri.TryCreate(value, UriKind.Absolute, out var withScheme) || withScheme.Host.Length == 0)
            {
                throw Invalid(text, source);
            }

            if (withScheme.Scheme != Uri.UriSchemeHttp && withScheme.Scheme != Uri.UriSchemeHttps)
            {
                throw CliException.Usage($"{source} '{text}' uses scheme '{withScheme.Scheme}'; use http:// (plaintext h2c), https://, or host:port.");
            }

            if (withScheme.Query.Length > 0 || withScheme.Fragment.Length > 0)
            {
                throw Invalid(text, source);
            }

            return withScheme;
        }

        if (value.Length > 0 && value.All(char.IsAsciiDigit))
        {
            value = "localhost:" + value;
        }

        if (value.Length == 0 || value.Contains('/', StringComparison.Ordinal) ||
            !Uri.TryCreate("http://" + value, UriKind.Absolute, out var address) || address.Host.Length == 0)
        {
            throw Invalid(text, source);
        }

        if (!HasPort(value))
        {
            address = new UriBuilder(address) { Port = DefaultPort }.Uri;
        }

        return address;
    }

    /// <summary>Formats an address the way messages show it: scheme, host and port, no trailing slash.</summary>
    public static string Display(Uri address) => address.GetLeftPart(UriPartial.Authority) + address.AbsolutePath.TrimEnd('/');

    // A port follows the last ':' after any bracketed IPv6 literal.
    private static bool HasPort(string authority)
    {
        var hostEnd = authority.LastIndexOf(']');
        return authority.IndexOf(':', hostEnd + 1) >= 0;
    }

    private static CliException Invalid(string text, string source) =>
        CliException.Usage($"{source} '{text}' is not an endpoint; expected host:port or http://host:port (for example localhost:{DefaultPort}).");
}
