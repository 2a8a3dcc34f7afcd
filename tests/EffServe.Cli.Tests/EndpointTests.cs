using EffServe.Cli.Connection;

namespace EffServe.Cli.Tests;

public sealed class EndpointTests
{
    private static readonly Func<string, string?> s_noEnvironment = _ => null;

    [Theory]
    [InlineData("localhost:8001", "http://localhost:8001/")]
    [InlineData("inference.example:9000", "http://inference.example:9000/")]
    [InlineData("10.0.0.7:80", "http://10.0.0.7/")]
    [InlineData("[::1]:8001", "http://[::1]:8001/")]
    [InlineData("myhost", "http://myhost:8001/")]
    [InlineData("[::1]", "http://[::1]:8001/")]
    [InlineData("9001", "http://localhost:9001/")]
    [InlineData("  localhost:8001  ", "http://localhost:8001/")]
    public void Parse_WithoutScheme_UsesPlaintextHttp(string text, string expected)
    {
        Assert.Equal(expected, Endpoint.Parse(text).AbsoluteUri);
    }

    [Theory]
    [InlineData("http://localhost:8001", "http://localhost:8001/")]
    [InlineData("https://models.example", "https://models.example/")]
    [InlineData("http://127.0.0.1:5000/", "http://127.0.0.1:5000/")]
    public void Parse_WithScheme_KeepsIt(string text, string expected)
    {
        Assert.Equal(expected, Endpoint.Parse(text).AbsoluteUri);
    }

    [Theory]
    [InlineData("grpc://localhost:8001", "scheme 'grpc'")]
    [InlineData("ftp://host", "scheme 'ftp'")]
    [InlineData("local host:80", "is not an endpoint")]
    [InlineData("host:port", "is not an endpoint")]
    [InlineData("host:8001/path", "is not an endpoint")]
    [InlineData("http://host:8001?x=1", "is not an endpoint")]
    public void Parse_Invalid_ThrowsUsageError(string text, string expected)
    {
        var error = Assert.Throws<CliException>(() => Endpoint.Parse(text));

        Assert.Equal(ExitCodes.Usage, error.ExitCode);
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Resolve_NothingGiven_IsLocalhost8001()
    {
        Assert.Equal(new Uri("http://localhost:8001"), Endpoint.Resolve(null, s_noEnvironment));
        Assert.Equal(new Uri("http://localhost:8001"), Endpoint.Resolve("  ", s_noEnvironment));
    }

    [Fact]
    public void Resolve_EnvironmentSet_UsesIt()
    {
        var endpoint = Endpoint.Resolve(null, name => name == Endpoint.EnvironmentVariable ? "gateway:8080" : null);

        Assert.Equal(new Uri("http://gateway:8080"), endpoint);
    }

    [Fact]
    public void Resolve_OptionAndEnvironment_OptionWins()
    {
        var endpoint = Endpoint.Resolve("https://other:443", _ => "gateway:8080");

        Assert.Equal(new Uri("https://other:443"), endpoint);
    }

    [Fact]
    public void Resolve_InvalidEnvironment_NamesTheVariable()
    {
        var error = Assert.Throws<CliException>(() => Endpoint.Resolve(null, _ => "tcp://x"));

        Assert.Contains(Endpoint.EnvironmentVariable, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Display_DropsTrailingSlash()
    {
        Assert.Equal("http://localhost:8001", Endpoint.Display(new Uri("http://localhost:8001/")));
    }
}
