using System.Buffers.Binary;
using System.Globalization;
using EffServe.Gateway.Forwarding;
using EffServe.Gateway.Tests.Support;
using Grpc.Core;
using Microsoft.Extensions.DependencyInjection;

namespace EffServe.Gateway.Tests.Attacks;

/// <summary>
/// Unbounded request buffering: many streams on several connections each send most of a large
/// first message and stall. The gateway holds no more than its budgets (small ones here: 256 KiB
/// messages, 512 KiB per connection, 1 MiB in all): what would pass them is refused at once with
/// RESOURCE_EXHAUSTED, and what is held ends at the request-body timeout (3 s here) with
/// DEADLINE_EXCEEDED, after which nothing is held.
/// </summary>
[Collection(nameof(UnderAttack))]
public sealed class RequestBufferingTests(AttackReplicas replicas)
{
    private const int MaxRequestBytes = 256 * 1024;
    private const int Connections = 4;
    private const int StreamsPerConnection = 6;
    private const int Declared = 200 * 1024;
    private const int Sent = 150 * 1024;

    [Fact]
    public async Task StalledPartialBodiesOnManyConnections_HeldWithinBudgetsThenTimedOut()
    {
        // A first message that declares 200 KiB, of which 150 KiB arrive.
        var partial = new byte[5 + Sent];
        BinaryPrimitives.WriteUInt32BigEndian(partial.AsSpan(1), Declared);
        var outcomes = new List<string>();
        long heldAfter = -1;
        await AttackHarness.RunAsync(
            replicas,
            async attack =>
            {
                var connections = new List<RawH2>();
                try
                {
                    for (var c = 0; c < Connections; c++)
                    {
                        var raw = await RawH2.ConnectAsync(attack.Address);
                        raw.StartReading();
                        connections.Add(raw);
                        for (var s = 0; s < StreamsPerConnection; s++)
                        {
                            await raw.HeadersAsync(1 + (2 * s), "ModelInfer");
                            await raw.WriteDataAsync(1 + (2 * s), partial, endStream: false);
                        }
                    }

                    foreach (var raw in connections)
                    {
                        for (var s = 0; s < StreamsPerConnection; s++)
                        {
                            var id = 1 + (2 * s);
                            outcomes.Add($"{await raw.OutcomeAsync(id, TimeSpan.FromSeconds(15))}: {raw.Messages.GetValueOrDefault(id)}");
                        }
                    }
                }
                finally
                {
                    foreach (var raw in connections)
                    {
                        await raw.DisposeAsync();
                    }
                }

                var forwarder = attack.Gateway.Services.GetRequiredService<ModelCallForwarder>();
                await Eventually.UntilAsync(() => forwarder.BufferedRequestBytes == 0, "the gateway holds no request bytes once the stalled calls ended");
                heldAfter = forwarder.BufferedRequestBytes;
            },
            configure: s => s
                .Set("MaxRequestBytes", MaxRequestBytes.ToString(CultureInfo.InvariantCulture))
                .Set("MaxBufferedRequestBytesPerConnection", (2 * MaxRequestBytes).ToString(CultureInfo.InvariantCulture))
                .Set("MaxBufferedRequestBytes", (4 * MaxRequestBytes).ToString(CultureInfo.InvariantCulture))
                .Set("RequestBodyTimeout", "00:00:03"));

        AttackContext.Report(string.Join(Environment.NewLine, outcomes.GroupBy(o => o).Select(g => $"{g.Count()} × {g.Key}")));
        var refused = $"grpc-status {(int)StatusCode.ResourceExhausted}: ";
        var timedOut = $"grpc-status {(int)StatusCode.DeadlineExceeded}: ";
        Assert.All(outcomes, o => Assert.True(o.StartsWith(refused, StringComparison.Ordinal) || o.StartsWith(timedOut, StringComparison.Ordinal), o));
        Assert.All(outcomes, o => Assert.True(o.Length > refused.Length + 10, $"no message: {o}"));
        Assert.Contains(outcomes, o => o.StartsWith(refused, StringComparison.Ordinal));
        Assert.Contains(outcomes, o => o.StartsWith(timedOut, StringComparison.Ordinal));
        Assert.Equal(0, heldAfter);
    }
}
