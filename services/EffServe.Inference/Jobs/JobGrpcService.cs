using EffServe.Contracts.Inference;
using EffServe.Contracts.Jobs;
using EffServe.Core.Jobs;
using EffServe.Inference.Rpc;
using EffServe.Inference.Serving;
using EffServe.Redis;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.Options;

namespace EffServe.Inference.Jobs;

/// <summary>
/// effserve.v1.JobService: jobs are stored in Redis and run by the workers of every replica of
/// their model (<see cref="JobWorker"/>). Items are validated in full at submission, so a job
/// holds only items the model accepts. Without Redis every call answers UNAVAILABLE.
/// </summary>
public sealed class JobGrpcService : JobService.JobServiceBase
{
    private const int DefaultPage = 1000;
    private const int StreamBatch = 256;

    private readonly InferenceEngine _engine;
    private readonly RedisJobStore _store;
    private readonly JobOptions _options;
    private readonly TimeProvider _time;

    public JobGrpcService(InferenceEngine engine, RedisJobStore store, IOptions<JobOptions> options, TimeProvider time)
    {
        _engine = engine;
        _store = store;
        _options = options.Value;
        _time = time;
    }

    public override async Task<SubmitJobResponse> SubmitJob(SubmitJobRequest request, ServerCallContext context)
    {
        RequireRedis();
        var model = _engine.Resolve(request.ModelName, request.ModelVersion).Definition;
        if (request.Priority is not (0 or 1))
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"priority is {request.Priority}; use 0 (normal) or 1 (high)."));
        }

        if (request.Items.Count == 0)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "The job has no items; send at least one input set in items."));
        }

        if (request.Items.Count > _options.MaxItems)
        {
            throw new RpcException(new Status(StatusCode.ResourceExhausted, $"The job has {request.Items.Count} items, above the limit of {_options.MaxItems} (EffServe:Jobs:MaxItems); split it into several jobs."));
        }

        var payloads = new List<byte[]>(request.Items.Count);
        long total = 0;
        for (var i = 0; i < request.Items.Count; i++)
        {
            var item = request.Items[i];
            if (item.ModelName.Length > 0 && item.ModelName != model.Name)
            {
                throw new RpcException(new Status(StatusCode.InvalidArgument, $"Item {i} names model '{StatusDetails.Quote(item.ModelName)}' but the job is for '{model.Name}'; leave the item's model_name empty."));
            }

            if (item.ModelVersion.Length > 0 && item.ModelVersion != model.Version)
            {
                throw new RpcException(new Status(StatusCode.InvalidArgument, $"Item {i} names version '{StatusDetails.Quote(item.ModelVersion)}' but model '{model.Name}' serves version {model.Version}; leave the item's model_version empty."));
            }

            try
            {
                _ = RequestParameters.Parse(item.Parameters);
                _ = TensorCodec.DecodeInputs(item, model);
                _ = TensorCodec.ResolveOutputs(item, model);
            }
            catch (RpcException e)
            {
                throw new RpcException(new Status(e.StatusCode, $"Item {i}: {e.Status.Detail}"));
            }

            var stored = item.Clone();
            stored.ModelName = model.Name;
            stored.ModelVersion = "";
            var bytes = stored.ToByteArray();
            if (bytes.Length > _options.MaxItemBytes)
            {
                throw new RpcException(new Status(StatusCode.ResourceExhausted, $"Item {i} is {bytes.Length} bytes, above the limit of {_options.MaxItemBytes} (EffServe:Jobs:MaxItemBytes)."));
            }

            total += bytes.Length;
            if (total > _options.MaxJobBytes)
            {
                throw new RpcException(new Status(StatusCode.ResourceExhausted, $"The job's items pass {_options.MaxJobBytes} bytes (EffServe:Jobs:MaxJobBytes) at item {i}; split it into several jobs."));
            }

            payloads.Add(bytes);
        }

        var id = JobIds.New(model.Name);
        await Redis(() => _store.SubmitAsync(id, model.Name, Tenant(context), (int)request.Priority, payloads, TimeSpan.FromSeconds(_options.TtlSeconds), _time.GetUtcNow().ToUnixTimeMilliseconds(), context.CancellationToken)).ConfigureAwait(false);
        return new SubmitJobResponse { JobId = id, Items = (ulong)payloads.Count, TtlSeconds = (ulong)_options.TtlSeconds };
    }

    public override async Task<GetJobResponse> GetJob(GetJobRequest request, ServerCallContext context)
    {
        var job = await FindAsync(request.JobId, context).ConfigureAwait(false);
        var response = Describe(job);
        if (request.IncludeResults)
        {
            var limit = request.ResultsLimit == 0 ? DefaultPage : (int)Math.Min(request.ResultsLimit, DefaultPage);
            var from = (int)Math.Min(request.ResultsOffset, (ulong)job.Items);
            var count = (int)Math.Min(limit, job.Items - from);
            var results = await Redis(() => _store.GetResultsAsync(job.Id, from, count, context.CancellationToken)).ConfigureAwait(false);
            response.Results.Add(results.Select(r => JobResult.Parser.ParseFrom(r.Payload)));
        }

        return response;
    }

    public override async Task StreamJobResults(StreamJobResultsRequest request, IServerStreamWriter<JobResult> responseStream, ServerCallContext context)
    {
        var token = context.CancellationToken;
        var job = await FindAsync(request.JobId, context).ConfigureAwait(false);
        var after = "0-0";
        var idle = TimeSpan.FromMilliseconds(_options.PollIntervalMs);
        while (true)
        {
            var finished = job.State != JobStates.Queued;
            var batch = await Redis(() => _store.ReadResultsAfterAsync(job.Id, after, StreamBatch, token)).ConfigureAwait(false);
            foreach (var (eventId, _, payload) in batch)
            {
                await responseStream.WriteAsync(JobResult.Parser.ParseFrom(payload), token).ConfigureAwait(false);
                after = eventId;
            }

            if (batch.Count > 0)
            {
                idle = TimeSpan.FromMilliseconds(_options.PollIntervalMs);
                continue;
            }

            // Finished before this empty read: every result was already announced.
            if (finished)
            {
                return;
            }

            await Task.Delay(idle, _time, token).ConfigureAwait(false);
            idle = TimeSpan.FromMilliseconds(Math.Min(idle.TotalMilliseconds * 2, _options.PollIntervalMs * 10));
            job = await Redis(() => _store.GetAsync(job.Id, token)).ConfigureAwait(false) ?? job with { State = JobStates.Cancelled };
        }
    }

    public override async Task<CancelJobResponse> CancelJob(CancelJobRequest request, ServerCallContext context)
    {
        var job = await FindAsync(request.JobId, context).ConfigureAwait(false);
        await Redis(() => _store.CancelAsync(job.Id, context.CancellationToken)).ConfigureAwait(false);
        var after = await Redis(() => _store.GetAsync(job.Id, context.CancellationToken)).ConfigureAwait(false) ?? job;
        var described = Describe(after);
        return new CancelJobResponse { State = described.State, Succeeded = described.Succeeded, Failed = described.Failed };
    }

    private static GetJobResponse Describe(JobRecord job) => new()
    {
        JobId = job.Id,
        ModelName = job.Model,
        State = job.State switch
        {
            JobStates.Completed => JobState.Completed,
            JobStates.Cancelled => JobState.Cancelled,
            _ when job.Succeeded + job.Failed > 0 => JobState.Running,
            _ => JobState.Queued,
        },
        Items = (ulong)job.Items,
        Succeeded = (ulong)job.Succeeded,
        Failed = (ulong)job.Failed,
        Priority = job.Priority,
        SubmittedUnixMs = job.SubmittedUnixMs,
    };

    /// <summary>The tenant the gateway says the call comes from; "" when it says none (anonymous).</summary>
    private static string Tenant(ServerCallContext context) => context.RequestHeaders.GetValue(TenantHeader.Name) ?? "";

    /// <summary>
    /// The job, for its owner only: another tenant's job answers NOT_FOUND exactly as a job that
    /// never existed, so ids reveal nothing across tenants.
    /// </summary>
    private async Task<JobRecord> FindAsync(string id, ServerCallContext context)
    {
        var cancellationToken = context.CancellationToken;
        RequireRedis();
        if (!JobIds.TryParse(id, out var model, out var problem))
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, problem));
        }

        _ = _engine.Resolve(model, "");
        var job = await Redis(() => _store.GetAsync(id, cancellationToken)).ConfigureAwait(false);
        return job is not null && job.Owner == Tenant(context)
            ? job
            : throw new RpcException(new Status(StatusCode.NotFound, $"There is no job '{id}' for this caller: it never existed, expired {_options.TtlSeconds} s after submission (EffServe:Jobs:TtlSeconds), or another tenant submitted it."));
    }

    private void RequireRedis()
    {
        if (!_store.IsConfigured)
        {
            throw new RpcException(new Status(StatusCode.Unavailable, "Jobs need Redis, and none is configured: set ConnectionStrings:redis (environment ConnectionStrings__redis) to a Redis endpoint, e.g. localhost:6379."));
        }
    }

    private static async Task<T> Redis<T>(Func<Task<T>> call)
    {
        try
        {
            return await call().ConfigureAwait(false);
        }
        catch (RedisUnavailableException e)
        {
            throw new RpcException(new Status(StatusCode.Unavailable, $"{e.Message} Retry later."));
        }
    }

    private static Task<bool> Redis(Func<Task> call) => Redis(async () =>
    {
        await call().ConfigureAwait(false);
        return true;
    });
}
