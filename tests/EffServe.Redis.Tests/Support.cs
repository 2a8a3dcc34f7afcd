using System.Runtime.InteropServices;
using EffServe.Contracts.Inference;
using EffServe.Contracts.Jobs;
using EffServe.Testing;
using Google.Protobuf;
using Grpc.Core;

namespace EffServe.Redis.Tests;

/// <summary>Requests to the demo model digits (one 1×8×8 image), its server settings and waits.</summary>
internal static class Digits
{
    public const string Model = "digits";

    public static CancellationToken Ct => TestContext.Current.CancellationToken;

    public static DateTime Deadline(int seconds = 30) => TimeProvider.System.GetUtcNow().UtcDateTime.AddSeconds(seconds);

    public static float[] Pixels(int sample)
    {
        var pixels = new float[64];
        for (var i = 0; i < pixels.Length; i++)
        {
            pixels[i] = ((i * 7) + (sample * 13)) % 17;
        }

        return pixels;
    }

    /// <summary>Image <paramref name="sample"/> as raw contents (or typed contents when <paramref name="raw"/> is false).</summary>
    public static ModelInferRequest Request(int sample, bool raw = true, params (string Key, InferParameter Value)[] parameters)
    {
        var request = new ModelInferRequest { ModelName = Model, Id = $"r{sample}" };
        var input = new ModelInferRequest.Types.InferInputTensor { Name = "image", Datatype = "FP32" };
        input.Shape.Add([1, 1, 8, 8]);
        var pixels = Pixels(sample);
        if (raw)
        {
            request.RawInputContents.Add(ByteString.CopyFrom(MemoryMarshal.AsBytes(pixels.AsSpan())));
        }
        else
        {
            input.Contents = new InferTensorContents();
            input.Contents.Fp32Contents.Add(pixels);
        }

        request.Inputs.Add(input);
        foreach (var (key, value) in parameters)
        {
            request.Parameters[key] = value;
        }

        return request;
    }

    public static (string, InferParameter) Text(string key, string value) => (key, new InferParameter { StringParam = value });

    public static (string, InferParameter) Number(string key, double value) => (key, new InferParameter { DoubleParam = value });

    public static string CacheOutcome(ModelInferResponse response) => response.Parameters["effserve.cache"].StringParam;

    /// <summary>The logits of a response, raw or typed.</summary>
    public static float[] Logits(ModelInferResponse response) => response.RawOutputContents.Count > 0
        ? MemoryMarshal.Cast<byte, float>(response.RawOutputContents[0].Span).ToArray()
        : [.. response.Outputs[0].Contents.Fp32Contents];

    /// <summary>Settings of a digits server with the cache on (and Redis when given).</summary>
    public static Dictionary<string, string?> Settings(RedisServer? redis, int ttlSeconds = 300, params (string Key, string Value)[] more)
    {
        var settings = new Dictionary<string, string?>
        {
            ["EffServe:Cache:Models:digits:Enabled"] = "true",
            ["EffServe:Cache:Models:digits:TtlSeconds"] = ttlSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["EffServe:Redis:BreakerOpenSeconds"] = "0.5",
            ["EffServe:Redis:ReconnectIntervalMs"] = "200",
            ["EffServe:Jobs:PollIntervalMs"] = "20",
        };
        if (redis is not null)
        {
            settings["ConnectionStrings:redis"] = redis.ConnectionString;
        }

        foreach (var (key, value) in more)
        {
            settings[key] = value;
        }

        return settings;
    }

    public static Task<InferenceServer> StartAsync(Dictionary<string, string?> settings) => InferenceServer.StartAsync(RepoPaths.Zoo, settings);

    public static GRPCInferenceService.GRPCInferenceServiceClient Client(InferenceServer server) => new(server.Channel);

    public static JobService.JobServiceClient Jobs(InferenceServer server) => new(server.Channel);

    /// <summary>A digits job of <paramref name="items"/> samples from <paramref name="first"/> on, the items naming no model.</summary>
    public static SubmitJobRequest Job(int items, int first = 0)
    {
        var job = new SubmitJobRequest { ModelName = Model };
        for (var i = 0; i < items; i++)
        {
            var item = Request(first + i);
            item.ModelName = "";
            job.Items.Add(item);
        }

        return job;
    }

    public static Task<GetJobResponse> GetAsync(InferenceServer server, string id, bool results = false) =>
        Jobs(server).GetJobAsync(new GetJobRequest { JobId = id, IncludeResults = results }, deadline: Deadline(), cancellationToken: Ct).ResponseAsync;

    /// <summary>Every result of the job, as StreamJobResults sends them until the job ends.</summary>
    public static async Task<List<JobResult>> StreamAsync(InferenceServer server, string id)
    {
        using var call = Jobs(server).StreamJobResults(new StreamJobResultsRequest { JobId = id }, deadline: Deadline(60), cancellationToken: Ct);
        var results = new List<JobResult>();
        while (await call.ResponseStream.MoveNext(Ct))
        {
            results.Add(call.ResponseStream.Current);
        }

        return results;
    }

    public static Task<ModelInferResponse> InferAsync(InferenceServer server, ModelInferRequest request) =>
        Client(server).ModelInferAsync(request, deadline: Deadline(), cancellationToken: Ct).ResponseAsync;

    public static async Task<ModelStatistics> StatisticsAsync(InferenceServer server) =>
        (await Client(server).ModelStatisticsAsync(new ModelStatisticsRequest { Name = Model }, deadline: Deadline(), cancellationToken: Ct)).ModelStats.Single();

    /// <summary>Waits until <paramref name="condition"/> holds, polling; fails naming <paramref name="what"/> after <paramref name="seconds"/>.</summary>
    public static async Task UntilAsync(Func<Task<bool>> condition, string what, int seconds = 30)
    {
        var until = TimeProvider.System.GetUtcNow().UtcDateTime.AddSeconds(seconds);
        while (!await condition())
        {
            Assert.True(TimeProvider.System.GetUtcNow().UtcDateTime < until, $"Timed out after {seconds} s waiting until {what}.");
            await Task.Delay(50, Ct);
        }
    }

    public static async Task<RpcException> FailsAsync(Func<Task> call)
    {
        return await Assert.ThrowsAsync<RpcException>(call);
    }
}
