using EffServe.Gateway.Tests.Support;
using Grpc.Core;

namespace EffServe.Gateway.Tests.Attacks;

/// <summary>
/// Malformed protobuf through the gateway: messages whose first field names digits, so the gateway
/// routes them, but whose later fields are broken inside (an input tensor cut short, a string that
/// is not UTF-8, a group that never ends). The caller is answered INVALID_ARGUMENT with a message.
/// </summary>
[Collection(nameof(UnderAttack))]
public sealed class MalformedProtobufTests(AttackReplicas replicas)
{
    private static readonly byte[] s_model = [0x0A, 6, .. "digits"u8];

    public static TheoryData<string, byte[]> Messages => new()
    {
        { "input whose name claims 16 bytes, 3 follow", [.. s_model, 0x2A, 0x05, 0x0A, 0x10, (byte)'a', (byte)'b', (byte)'c'] },
        { "input holding a tag that never ends", [.. s_model, 0x2A, 0x03, 0xFF, 0xFF, 0xFF] },
        { "id that is not UTF-8", [.. s_model, 0x1A, 0x02, 0xC3, 0x28] },
        { "input holding a group that never ends", [.. s_model, 0x2A, 0x01, 0x0B] },
        { "input whose shape is a cut varint", [.. s_model, 0x2A, 0x03, 0x1A, 0x01, 0x80] },
    };

    [Theory]
    [MemberData(nameof(Messages))]
    public async Task BrokenInsideARoutedMessage_InvalidArgumentWithMessage(string what, byte[] message)
    {
        RawReply? reply = null;
        await AttackHarness.RunAsync(replicas, async attack =>
        {
            reply = await RawGrpc.PostAsync(attack.Address, RawGrpc.Inference + "ModelInfer", RawGrpc.Frame(message));
        });

        AttackContext.Report($"{what}: {reply!.Status} {reply.Message}");

        // Depends on the inference service answering malformed protobuf INVALID_ARGUMENT (a change to
        // the service on its own branch); until it lands the service answers UNKNOWN.
        Assert.Equal(StatusCode.InvalidArgument, reply.Status);
        Assert.False(string.IsNullOrWhiteSpace(reply.Message), "INVALID_ARGUMENT without a message");
    }
}
