using System.Net.Sockets;
using EffServe.Gateway.Routing;
using Grpc.Core;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace EffServe.Gateway.Tests;

/// <summary>
/// The health and choice of replicas as pure decisions: a clock the test moves
/// (<see cref="FakeTimeProvider"/>) and draws the test chooses; no sockets, no sleeps.
/// </summary>
public sealed class ReplicaSetTests
{
    private const int Threshold = 3;
    private static readonly TimeSpan s_busyWindow = TimeSpan.FromSeconds(3);

    private readonly FakeTimeProvider _time = new();

    private Destination NewDestination(int port = 8001) => new(new Uri($"http://127.0.0.1:{port}"), _time);

    private static ProbeVerdict Probe(Destination destination, ProbeResult result) => destination.RecordProbe(result, Threshold, s_busyWindow);

    [Fact]
    public void RecordProbe_FailuresBelowThreshold_StaysInRotation()
    {
        var replica = NewDestination();
        Probe(replica, ProbeResult.Serving); // a replica that has served: the threshold's grace applies

        Assert.Equal(ProbeVerdict.Failing, Probe(replica, ProbeResult.TimedOut));
        Assert.Equal(ProbeVerdict.Failing, Probe(replica, ProbeResult.Failed));

        Assert.True(replica.IsHealthy);
        Assert.Equal(2, replica.ConsecutiveFailedProbes);
    }

    [Fact]
    public void RecordProbe_NeverServedAndProbeFails_OutAtOnceUntilServing()
    {
        // A replica not listening yet (its zoo still loading) must not stand in rotation, and the
        // gateway must not say it is ready, for the threshold's worth of probes.
        var replica = NewDestination();

        Assert.Equal(ProbeVerdict.Out, Probe(replica, ProbeResult.Failed));
        Assert.False(replica.IsHealthy);
        Assert.Equal(ProbeVerdict.Serving, Probe(replica, ProbeResult.Serving));
        Assert.True(replica.IsHealthy);
        Assert.Equal(ProbeVerdict.Failing, Probe(replica, ProbeResult.Failed)); // now it has the grace
    }

    [Fact]
    public void RecordProbe_ThresholdFailuresInARow_LeavesRotation()
    {
        var replica = NewDestination();
        Probe(replica, ProbeResult.Serving); // a replica that has served: the threshold's grace applies

        Probe(replica, ProbeResult.Failed);
        Probe(replica, ProbeResult.TimedOut);
        var third = Probe(replica, ProbeResult.Failed);

        Assert.Equal(ProbeVerdict.Out, third);
        Assert.False(replica.IsHealthy);
    }

    [Fact]
    public void RecordProbe_ServingBetweenFailures_CountStartsAgain()
    {
        var replica = NewDestination();

        Probe(replica, ProbeResult.Failed);
        Probe(replica, ProbeResult.Failed);
        Probe(replica, ProbeResult.Serving);
        Probe(replica, ProbeResult.Failed);
        Probe(replica, ProbeResult.Failed);

        Assert.True(replica.IsHealthy);
        Assert.Equal(2, replica.ConsecutiveFailedProbes);
    }

    [Fact]
    public void RecordProbe_OneServingAfterLeaving_ReturnsToRotation()
    {
        var replica = NewDestination();
        for (var i = 0; i < Threshold; i++)
        {
            Probe(replica, ProbeResult.Failed);
        }

        Assert.False(replica.IsHealthy);
        Assert.Equal(ProbeVerdict.Serving, Probe(replica, ProbeResult.Serving));
        Assert.True(replica.IsHealthy);
        Assert.Equal(0, replica.ConsecutiveFailedProbes);
    }

    [Fact]
    public void RecordProbe_NotServingAnswer_LeavesRotationAtOnce()
    {
        var replica = NewDestination();

        Assert.Equal(ProbeVerdict.Out, Probe(replica, ProbeResult.NotServing));
        Assert.False(replica.IsHealthy);
    }

    [Fact]
    public void RecordProbe_TimeoutWhileAnsweringCalls_BusyAndNeverLeaves()
    {
        var replica = NewDestination();

        // Overloaded: every probe times out, but the replica keeps answering calls.
        for (var round = 0; round < 10; round++)
        {
            replica.RecordSuccess();
            _time.Advance(TimeSpan.FromSeconds(2));
            Assert.Equal(ProbeVerdict.Busy, Probe(replica, ProbeResult.TimedOut));
        }

        Assert.True(replica.IsHealthy);
        Assert.Equal(0, replica.ConsecutiveFailedProbes);
    }

    [Fact]
    public void RecordProbe_TimeoutLongAfterLastAnswer_Counts()
    {
        var replica = NewDestination();
        replica.RecordSuccess();
        _time.Advance(s_busyWindow);
        Assert.Equal(ProbeVerdict.Busy, Probe(replica, ProbeResult.TimedOut)); // the window's edge still counts as answering

        _time.Advance(TimeSpan.FromTicks(1));
        for (var i = 0; i < Threshold - 1; i++)
        {
            Assert.Equal(ProbeVerdict.Failing, Probe(replica, ProbeResult.TimedOut));
        }

        Assert.Equal(ProbeVerdict.Out, Probe(replica, ProbeResult.TimedOut));
        Assert.False(replica.IsHealthy);
    }

    [Fact]
    public void RecordProbe_BusyBetweenFailures_RunStartsAgain()
    {
        var replica = NewDestination();
        Probe(replica, ProbeResult.TimedOut);
        Probe(replica, ProbeResult.TimedOut);

        replica.RecordSuccess();
        Assert.Equal(ProbeVerdict.Busy, Probe(replica, ProbeResult.TimedOut));
        _time.Advance(s_busyWindow + TimeSpan.FromTicks(1));
        Probe(replica, ProbeResult.TimedOut);
        Probe(replica, ProbeResult.TimedOut);

        Assert.True(replica.IsHealthy);
        Assert.Equal(2, replica.ConsecutiveFailedProbes);
    }

    [Fact]
    public void RecordProbe_TimeoutAfterLeaving_NotBusyEvenWithLateAnswers()
    {
        var replica = NewDestination();
        for (var i = 0; i < Threshold; i++)
        {
            Probe(replica, ProbeResult.Failed);
        }

        replica.RecordSuccess(); // a call that was in flight when it left

        Assert.Equal(ProbeVerdict.Out, Probe(replica, ProbeResult.TimedOut));
        Assert.False(replica.IsHealthy);
    }

    [Fact]
    public void RecordProbe_ConnectionFailureWhileAnsweringCalls_StillCounts()
    {
        var replica = NewDestination();
        Probe(replica, ProbeResult.Serving); // a replica that has served: the threshold's grace applies
        replica.RecordSuccess();

        Assert.Equal(ProbeVerdict.Failing, Probe(replica, ProbeResult.Failed)); // only a timeout can mean busy
        Assert.Equal(1, replica.ConsecutiveFailedProbes);
    }

    [Fact]
    public void MarkFailed_PenaltyRunsOut_BackInRotationExactlyThen()
    {
        var replica = NewDestination();

        replica.MarkFailed(TimeSpan.FromSeconds(10));
        Assert.False(replica.IsHealthy);
        _time.Advance(TimeSpan.FromSeconds(10) - TimeSpan.FromTicks(1));
        Assert.False(replica.IsHealthy);
        _time.Advance(TimeSpan.FromTicks(1));

        Assert.True(replica.IsHealthy);
    }

    [Fact]
    public void MarkFailed_ThenServingProbe_PenaltyEndsEarly()
    {
        var replica = NewDestination();
        replica.MarkFailed(TimeSpan.FromSeconds(10));

        Probe(replica, ProbeResult.Serving);

        Assert.True(replica.IsHealthy);
    }

    [Fact]
    public void MarkFailed_ThenBusyProbe_PenaltyKept()
    {
        var replica = NewDestination();
        replica.RecordSuccess();
        replica.MarkFailed(TimeSpan.FromSeconds(10));

        Probe(replica, ProbeResult.TimedOut);

        Assert.False(replica.IsHealthy);
    }

    [Fact]
    public void Pick_PowerOfTwo_LessLoadedOfTheTwoDrawn()
    {
        // Draws: first index 2, second index 0 (of the others: 0, 1, 3 → 0).
        var set = NewSet(powerOfTwo: true, new Draws(2, 0), 3);
        var (a, c) = (set.Destinations[0], set.Destinations[2]);
        a.Enter();
        a.Enter();
        c.Enter();

        Assert.Same(c, set.Pick());
    }

    [Fact]
    public void Pick_PowerOfTwo_SecondDrawSkipsTheFirst()
    {
        // First index 1; a second draw of 1 means the next replica past the first (index 2).
        var set = NewSet(powerOfTwo: true, new Draws(1, 1), 3);
        set.Destinations[1].Enter();

        Assert.Same(set.Destinations[2], set.Pick());
    }

    [Fact]
    public void Pick_LeastRequests_LeastLoadedOfAll()
    {
        var set = NewSet(powerOfTwo: false, new Draws(), 3);
        set.Destinations[0].Enter();
        set.Destinations[2].Enter();

        Assert.Same(set.Destinations[1], set.Pick());
    }

    [Fact]
    public void Pick_OutOfRotationAndExcluded_Skipped()
    {
        var set = NewSet(powerOfTwo: true, new Draws(), 3);
        set.Destinations[0].MarkFailed(TimeSpan.FromSeconds(1));

        Assert.Same(set.Destinations[2], set.Pick(exclude: set.Destinations[1]));
        Assert.Same(set.Destinations[1], set.Pick(exclude: set.Destinations[2]));

        _time.Advance(TimeSpan.FromSeconds(1));
        set.Destinations[1].Enter();
        set.Destinations[2].Enter();
        Assert.Same(set.Destinations[0], set.Pick(exclude: set.Destinations[1])); // back, and the less loaded

    }

    [Fact]
    public void Pick_NoneInRotation_Null()
    {
        var set = NewSet(powerOfTwo: true, new Draws(), 2);
        foreach (var replica in set.Destinations)
        {
            replica.RecordProbe(ProbeResult.NotServing, Threshold, s_busyWindow);
        }

        Assert.Null(set.Pick());
    }

    [Fact]
    public void IsServing_ReadsRotationNow_GatewayAndEachModel()
    {
        var options = Options.Create(new GatewayOptions
        {
            Models =
            {
                ["digits"] = new ModelRouteOptions { Destinations = ["http://127.0.0.1:8001"] },
                ["shapes"] = new ModelRouteOptions { Destinations = ["http://127.0.0.1:8002"] },
            },
        });
        using var router = new ModelRouter(options, _time, new Draws());
        Assert.True(router.TryGet("shapes", out var shapes));

        Assert.True(router.IsServing(""));
        shapes.Destinations[0].MarkFailed(TimeSpan.FromSeconds(5));

        Assert.False(router.IsServing(""));
        Assert.True(router.IsServing("digits"));
        Assert.False(router.IsServing("shapes"));
        Assert.Null(router.IsServing("nope"));

        _time.Advance(TimeSpan.FromSeconds(5));
        Assert.True(router.IsServing(""));
    }

    public static TheoryData<string, Exception?, bool> Failures => new()
    {
        { "connection refused", new HttpRequestException(HttpRequestError.ConnectionError, "refused", new SocketException((int)SocketError.ConnectionRefused)), true },
        { "bare socket: host unreachable", new SocketException((int)SocketError.HostUnreachable), true },
        { "bare socket: network unreachable", new SocketException((int)SocketError.NetworkUnreachable), true },
        { "name did not resolve", new HttpRequestException(HttpRequestError.NameResolutionError, "no such host"), true },
        { "connect timeout", new TaskCanceledException("canceled", new TimeoutException("connect timed out")), true },
        { "connect failure under a gRPC status", new RpcException(new Status(StatusCode.Unavailable, "Error connecting", new HttpRequestException(HttpRequestError.ConnectionError, "refused"))), true },
        { "connect failure under a YARP-style wrapper", new InvalidOperationException("outer", new HttpRequestException(HttpRequestError.ConnectionError, "refused")), true },
        { "nothing", null, false },
        { "stream reset", new HttpProtocolException(0x8, "The HTTP/2 server reset the stream. HTTP/2 error code 'CANCEL' (0x8).", null), false },
        { "GOAWAY ENHANCE_YOUR_CALM", new HttpRequestException(HttpRequestError.HttpProtocolError, "GOAWAY", new HttpProtocolException(0xb, "ENHANCE_YOUR_CALM", null)), false },
        { "oversize response header", new HttpRequestException(HttpRequestError.ConfigurationLimitExceeded, "headers too long"), false },
        { "malformed response", new HttpRequestException(HttpRequestError.InvalidResponse, "bad header"), false },
        { "response ended early", new HttpRequestException(HttpRequestError.ResponseEnded, "ended"), false },
        { "connection reset after it was up", new IOException("reset", new SocketException((int)SocketError.ConnectionReset)), false },
        { "cancelled by the client", new OperationCanceledException("client left"), false },
        { "deadline", new RpcException(new Status(StatusCode.DeadlineExceeded, "deadline")), false },
        { "unavailable with no cause", new RpcException(new Status(StatusCode.Unavailable, "shutting down")), false },
    };

    [Theory]
    [MemberData(nameof(Failures))]
    public void IsReplicaUnreachable_Failure_OnlyWhenReplicaCannotBeReached(string what, Exception? failure, bool unreachable)
    {
        Assert.True(ReplicaFailures.IsReplicaUnreachable(failure) == unreachable, $"{what}: expected {unreachable}.");
    }

    private ReplicaSet NewSet(bool powerOfTwo, Random random, int replicas)
    {
        var set = new ReplicaSet("digits", powerOfTwo, _time, random);
        set.Update(Enumerable.Range(0, replicas).Select(i => new Uri($"http://127.0.0.1:{8001 + i}")));
        return set;
    }

    /// <summary>Draws the test chooses, in order (then zeros).</summary>
    private sealed class Draws(params int[] values) : Random
    {
        private int _next;

        public override int Next(int maxValue)
        {
            var value = _next < values.Length ? values[_next++] : 0;
            Assert.InRange(value, 0, maxValue - 1);
            return value;
        }
    }
}
