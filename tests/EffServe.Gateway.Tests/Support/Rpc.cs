using Grpc.Core;

namespace EffServe.Gateway.Tests.Support;

/// <summary>Deadlines for every call (nothing in these tests may hang) and assertions on gRPC failures.</summary>
internal static class Rpc
{
    /// <summary>The running test's cancellation, for every call that takes one.</summary>
    public static CancellationToken Ct => TestContext.Current.CancellationToken;

    /// <summary>A deadline <paramref name="seconds"/> from now.</summary>
    public static DateTime Deadline(double seconds = 10) => TimeProvider.System.GetUtcNow().UtcDateTime.AddSeconds(seconds);

    /// <summary>Awaits <paramref name="call"/>, expecting it to fail with <paramref name="code"/> and a message holding every fragment.</summary>
    public static async Task<RpcException> FailsAsync(StatusCode code, Func<Task> call, params string[] fragments)
    {
        var error = await Assert.ThrowsAsync<RpcException>(call);
        Assert.True(error.StatusCode == code, $"Expected {code}, got {error.StatusCode}: {error.Status.Detail}");
        AssertMentions(error.Status.Detail, fragments);
        return error;
    }

    public static void AssertMentions(string message, params string[] fragments)
    {
        foreach (var fragment in fragments)
        {
            Assert.True(message.Contains(fragment, StringComparison.Ordinal), $"The message does not mention \"{fragment}\": {message}");
        }
    }
}
