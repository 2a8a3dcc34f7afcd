using EffServe.Contracts.Inference;
using EffServe.Inference.Tests.Support;
using Google.Protobuf;
using Grpc.Core;
using InputTensor = EffServe.Contracts.Inference.ModelInferRequest.Types.InferInputTensor;
using OutputTensor = EffServe.Contracts.Inference.ModelInferRequest.Types.InferRequestedOutputTensor;

namespace EffServe.Inference.Tests;

/// <summary>
/// Thousands of mutated ModelInfer requests, straight at a real service over real HTTP/2, as bytes
/// no typed client would send: the service stays up, never answers UNKNOWN or INTERNAL, gives every
/// refusal a message, and serves a well-formed request afterwards. Seeded, so a failure repeats.
/// </summary>
public sealed class FuzzTests : IClassFixture<DigitsServerFixture>
{
    private const int Seed = 20_14;
    private const int Requests = 3000;
    private const int InFlight = 8;

    private static readonly string[] s_datatypes = ["FP32", "FP64", "FP16", "BF16", "INT8", "INT64", "UINT8", "BOOL", "BYTES", "fp32", "", "FLOAT", "\u00e9\u00e9"];
    private static readonly string[] s_parameterKeys = ["effserve.variant", "effserve.slo_ms", "effserve.min_accuracy", "effserve.max_cost_usd", "effserve.cache", "effserve.exit_threshold", "priority", "timeout", "effserve.bogus", "binary_data_output", ""];

    private readonly DigitsServerFixture _server;

    public FuzzTests(DigitsServerFixture server)
    {
        _server = server;
    }

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task ModelInfer_ThousandsOfMutatedRequests_NoUnknownOrInternalAndEveryRefusalWithMessage()
    {
        var random = new Random(Seed);
        var bodies = Enumerable.Range(0, Requests).Select(i => Mutate(random, i)).ToList();
        using var raw = new RawGrpcClient(_server.Server.Address);
        var failures = new List<string>();
        using var gate = new SemaphoreSlim(InFlight);

        var calls = bodies.Select(async (body, i) =>
        {
            await gate.WaitAsync(Ct);
            try
            {
                var answer = await raw.CallAsync(RawGrpcClient.Inference + "ModelInfer", body.Frame, body.Headers, Ct);
                if (answer.Status is StatusCode.Unknown or StatusCode.Internal || (answer.Status != StatusCode.OK && string.IsNullOrWhiteSpace(answer.Message)))
                {
                    lock (failures)
                    {
                        failures.Add($"#{i} ({body.Mutation}): {answer.Status} '{answer.Message}'");
                    }
                }
            }
            finally
            {
                gate.Release();
            }
        });
        await Task.WhenAll(calls);

        Assert.True(failures.Count == 0, $"{failures.Count} of {Requests} answers broke the rules:\n{string.Join("\n", failures.Take(20))}");
        var response = await _server.Inference.ModelInferAsync(Wire.DigitsEvalRaw(0, 1), cancellationToken: Ct);
        Assert.Single(response.Outputs);
    }

    private sealed record FuzzBody(string Mutation, byte[] Frame, IReadOnlyDictionary<string, string>? Headers);

    /// <summary>A request mutated as a message (fields, shapes, datatypes, parameters), then maybe as bytes, then maybe compressed.</summary>
    private static FuzzBody Mutate(Random random, int index)
    {
        var request = Wire.DigitsEvalRaw(index % 500, 1 + random.Next(4));
        var mutations = new List<string>();
        if (random.Next(2) == 0)
        {
            MutateMessage(random, request, mutations);
        }

        var bytes = request.ToByteArray();
        if (random.Next(2) == 0)
        {
            bytes = MutateBytes(random, bytes, mutations);
        }

        Dictionary<string, string>? headers = null;
        var compressed = random.Next(4) == 0;
        if (compressed)
        {
            bytes = RawGrpcClient.Gzip(bytes);
            headers = new() { ["grpc-encoding"] = "gzip" };
            mutations.Add("gzip");
        }

        return new FuzzBody(string.Join(", ", mutations), RawGrpcClient.Frame(bytes, compressed), headers);
    }

    private static void MutateMessage(Random random, ModelInferRequest request, List<string> mutations)
    {
        switch (random.Next(9))
        {
            case 0:
                request.Inputs[0].Datatype = s_datatypes[random.Next(s_datatypes.Length)];
                mutations.Add("datatype");
                break;
            case 1:
                request.Inputs[0].Shape.Clear();
                request.Inputs[0].Shape.Add(Enumerable.Range(0, random.Next(6)).Select(_ => random.Next(4) == 0 ? random.NextInt64(long.MinValue, long.MaxValue) : random.Next(-2, 70)));
                mutations.Add("shape");
                break;
            case 2:
                request.Parameters.Add(s_parameterKeys[random.Next(s_parameterKeys.Length)], RandomParameter(random));
                mutations.Add("parameter");
                break;
            case 3:
                request.Inputs.Add(request.Inputs[0].Clone());
                if (random.Next(2) == 0)
                {
                    request.RawInputContents.Add(request.RawInputContents[0]);
                }

                mutations.Add("duplicated input");
                break;
            case 4:
                request.RawInputContents[0] = ByteString.CopyFrom(RandomBytes(random, random.Next(0, 2048)));
                mutations.Add("raw contents length");
                break;
            case 5:
                request.RawInputContents.Clear();
                request.Inputs[0].Contents = new InferTensorContents();
                request.Inputs[0].Contents.Fp32Contents.Add(Enumerable.Range(0, random.Next(0, 300)).Select(_ => (float)random.NextDouble()));
                request.Inputs[0].Contents.Int64Contents.Add(Enumerable.Range(0, random.Next(0, 3)).Select(_ => random.NextInt64()));
                mutations.Add("typed contents");
                break;
            case 6:
                request.Outputs.Add(Enumerable.Range(0, random.Next(1, 4)).Select(_ => new OutputTensor { Name = random.Next(2) == 0 ? Wire.Logits : "out" + random.Next(10) }));
                request.Outputs[0].Parameters.Add(s_parameterKeys[random.Next(s_parameterKeys.Length)], RandomParameter(random));
                mutations.Add("outputs");
                break;
            case 7:
                request.ModelName = random.Next(2) == 0 ? "" : new string('m', random.Next(1, 5000));
                request.ModelVersion = random.Next(2) == 0 ? "" : "v" + random.Next(9);
                mutations.Add("model");
                break;
            default:
                request.Inputs.Add(Enumerable.Range(0, random.Next(1, 200)).Select(i => new InputTensor { Name = i % 3 == 0 ? "" : "x" + i, Datatype = s_datatypes[random.Next(s_datatypes.Length)] }));
                mutations.Add("many inputs");
                break;
        }
    }

    private static InferParameter RandomParameter(Random random) => random.Next(6) switch
    {
        0 => new InferParameter { BoolParam = random.Next(2) == 0 },
        1 => new InferParameter { Int64Param = random.NextInt64(long.MinValue, long.MaxValue) },
        2 => new InferParameter { StringParam = new string('s', random.Next(0, 300)) },
        3 => new InferParameter { DoubleParam = random.Next(4) switch { 0 => double.NaN, 1 => double.PositiveInfinity, 2 => -1, _ => random.NextDouble() * 1e6 } },
        4 => new InferParameter { Uint64Param = (ulong)random.NextInt64() * 2 },
        _ => new InferParameter(),
    };

    /// <summary>Bit flips, a cut, a repeated slice (a field twice), or random bytes where a length or tag was.</summary>
    private static byte[] MutateBytes(Random random, byte[] bytes, List<string> mutations)
    {
        if (bytes.Length == 0)
        {
            return bytes;
        }

        switch (random.Next(5))
        {
            case 0:
                for (var flips = random.Next(1, 9); flips > 0; flips--)
                {
                    bytes[random.Next(bytes.Length)] ^= (byte)(1 << random.Next(8));
                }

                mutations.Add("bit flips");
                return bytes;
            case 1:
                mutations.Add("truncated");
                return bytes[..random.Next(bytes.Length)];
            case 2:
                {
                    var start = random.Next(bytes.Length);
                    var slice = bytes[start..Math.Min(bytes.Length, start + random.Next(1, 64))];
                    mutations.Add("slice repeated");
                    return [.. bytes, .. slice];
                }

            case 3:
                bytes[random.Next(bytes.Length)] = (byte)(random.Next(2) == 0 ? 0xFF : random.Next(256));
                mutations.Add("random byte");
                return bytes;
            default:
                mutations.Add("random tail");
                return [.. bytes, .. RandomBytes(random, random.Next(1, 32))];
        }
    }

    private static byte[] RandomBytes(Random random, int count)
    {
        var bytes = new byte[count];
        random.NextBytes(bytes);
        return bytes;
    }
}
