using Grpc.Core;

namespace EffServe.Inference.Tests.Support;

/// <summary>Assertions on gRPC failures: the status code, and what the message tells the caller.</summary>
internal static class RpcAssert
{
    /// <summary>Awaits <paramref name="call"/>, expecting it to fail with <paramref name="code"/> and a message holding every fragment.</summary>
    public static async Task<RpcException> FailsAsync(StatusCode code, Func<Task> call, params string[] fragments)
    {
        var error = await Assert.ThrowsAsync<RpcException>(call);
        Assert.True(error.StatusCode == code, $"Expected {code}, got {error.StatusCode}: {error.Status.Detail}");
        foreach (var fragment in fragments)
        {
            Assert.True(error.Status.Detail.Contains(fragment, StringComparison.Ordinal), $"The message does not mention \"{fragment}\": {error.Status.Detail}");
        }

        return error;
    }
}
