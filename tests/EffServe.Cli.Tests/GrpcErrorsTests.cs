using System.Net.Http;
using System.Net.Sockets;
using EffServe.Cli.Connection;
using Grpc.Core;

namespace EffServe.Cli.Tests;

public sealed class GrpcErrorsTests
{
    private static readonly Uri s_endpoint = new("http://localhost:8001/");

    [Theory]
    [InlineData(StatusCode.OK, "OK")]
    [InlineData(StatusCode.NotFound, "NOT_FOUND")]
    [InlineData(StatusCode.DeadlineExceeded, "DEADLINE_EXCEEDED")]
    [InlineData(StatusCode.ResourceExhausted, "RESOURCE_EXHAUSTED")]
    [InlineData(StatusCode.Unimplemented, "UNIMPLEMENTED")]
    [InlineData(StatusCode.DataLoss, "DATA_LOSS")]
    public void CanonicalName_IsTheGrpcSpelling(StatusCode code, string expected)
    {
        Assert.Equal(expected, GrpcErrors.CanonicalName(code));
    }

    [Fact]
    public void Describe_ServerError_IsOneLineWithCodeAddressAndMessage()
    {
        var error = new RpcException(new Status(StatusCode.ResourceExhausted, "queue full;\nretry in 200 ms"));

        var line = GrpcErrors.Describe(error, s_endpoint);

        Assert.Equal("RESOURCE_EXHAUSTED from http://localhost:8001: queue full; retry in 200 ms", line);
    }

    [Fact]
    public void Describe_NoMessage_SaysSo()
    {
        var line = GrpcErrors.Describe(new RpcException(new Status(StatusCode.Internal, "")), s_endpoint);

        Assert.Equal("INTERNAL from http://localhost:8001: (the server gave no message)", line);
    }

    [Fact]
    public void Describe_ConnectionRefused_SaysWhichAddressWasTried()
    {
        var refused = new HttpRequestException("Connection refused (localhost:8001)", new SocketException((int)SocketError.ConnectionRefused));
        var error = new RpcException(new Status(StatusCode.Unavailable, "Error connecting to subchannel.", refused));

        var line = GrpcErrors.Describe(error, s_endpoint);

        Assert.True(GrpcErrors.IsUnreachable(error));
        Assert.StartsWith("cannot reach http://localhost:8001: ", line, StringComparison.Ordinal);
        Assert.Contains(Endpoint.EnvironmentVariable, line, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', line);
    }

    [Fact]
    public void Describe_Http11Required_ExplainsH2c()
    {
        var refused = new HttpRequestException("The HTTP/2 server closed the connection.", new HttpProtocolException(0xd, "HTTP_1_1_REQUIRED", null));
        var error = new RpcException(new Status(StatusCode.Internal, "Error starting gRPC call.", refused));

        var line = GrpcErrors.Describe(error, s_endpoint);

        Assert.StartsWith("http://localhost:8001 does not speak HTTP/2 on this connection, which gRPC needs (HTTP_1_1_REQUIRED).", line, StringComparison.Ordinal);
    }

    [Fact]
    public void IsUnreachable_UnavailableFromServer_IsFalse()
    {
        var error = new RpcException(new Status(StatusCode.Unavailable, "no healthy replica of 'digits'"));

        Assert.False(GrpcErrors.IsUnreachable(error));
        Assert.Equal("UNAVAILABLE from http://localhost:8001: no healthy replica of 'digits'", GrpcErrors.Describe(error, s_endpoint));
    }

    [Theory]
    [InlineData(StatusCode.NotFound, ExitCodes.NotFound)]
    [InlineData(StatusCode.InvalidArgument, ExitCodes.InvalidInput)]
    [InlineData(StatusCode.Unimplemented, ExitCodes.Unsupported)]
    [InlineData(StatusCode.Unavailable, ExitCodes.ServerError)]
    [InlineData(StatusCode.Internal, ExitCodes.ServerError)]
    [InlineData(StatusCode.DeadlineExceeded, ExitCodes.ServerError)]
    public void ExitCodeOf_MapsStatus(StatusCode code, int expected)
    {
        Assert.Equal(expected, GrpcErrors.ExitCodeOf(new RpcException(new Status(code, "x"))));
    }
}
