using System.Diagnostics;
using System.Globalization;
using EffServe.Contracts.Inference;
using EffServe.Core.Protocol;
using EffServe.Core.Statistics;
using EffServe.Core.Tensors;
using EffServe.Core.Zoo;
using Grpc.Core;
using Microsoft.ML.OnnxRuntime;

namespace EffServe.Inference.Serving;

/// <summary>
/// One inference from request to response: resolve the model, read the parameters, validate and
/// decode the tensors, wait for a run slot, run the chosen variant, encode the outputs and
/// report where the time went.
/// </summary>
public sealed class InferenceEngine
{
    private const long MaxTimeoutUs = (uint.MaxValue - 1L) * 1000;

    private readonly ModelRepository _models;
    private readonly RunSlots _slots;
    private readonly TimeProvider _time;
    private readonly ILogger<InferenceEngine> _logger;

    public InferenceEngine(ModelRepository models, RunSlots slots, TimeProvider time, ILogger<InferenceEngine> logger)
    {
        _models = models;
        _slots = slots;
        _time = time;
        _logger = logger;
    }

    public async Task<ModelInferResponse> InferAsync(ModelInferRequest request, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        var model = Resolve(request.ModelName, request.ModelVersion);
        try
        {
            return await InferAsync(model, request, started, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is RpcException or OperationCanceledException)
        {
            model.Statistics.RecordFailure(Nanoseconds(started, Stopwatch.GetTimestamp()));
            throw;
        }
        catch (Exception e)
        {
            // Nothing unexpected leaves as UNKNOWN: it is logged in full and answered as INTERNAL.
            model.Statistics.RecordFailure(Nanoseconds(started, Stopwatch.GetTimestamp()));
            InferenceLog.RequestFailed(_logger, e, model.Definition.Name);
            throw new RpcException(new Status(StatusCode.Internal, $"Model '{model.Definition.Name}' failed the request unexpectedly ({e.GetType().Name}); the service log has the details."));
        }
    }

    /// <summary>Finds a served model and version, or fails with NOT_FOUND naming what exists.</summary>
    public ServedModel Resolve(string name, string version)
    {
        if (string.IsNullOrEmpty(name))
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"The model name is empty; models served here: {string.Join(", ", _models.Names)}."));
        }

        if (!_models.TryGet(name, out var model))
        {
            throw new RpcException(new Status(StatusCode.NotFound, $"Model '{name}' is not served here; models served here: {string.Join(", ", _models.Names)}."));
        }

        if (version.Length > 0 && version != model.Definition.Version)
        {
            throw new RpcException(new Status(StatusCode.NotFound, $"Model '{name}' has no version '{version}'; versions: {model.Definition.Version}."));
        }

        return model;
    }

    private async Task<ModelInferResponse> InferAsync(ServedModel served, ModelInferRequest request, long started, CancellationToken cancellationToken)
    {
        var definition = served.Definition;
        var runtime = served.Runtime;
        var parameters = RequestParameters.Parse(request.Parameters);
        var (variant, threshold) = ChooseVariant(served, parameters);
        var inputs = TensorCodec.DecodeInputs(request, definition);
        var outputs = TensorCodec.ResolveOutputs(request, definition);

        // A timeout beyond what a timer can wait (about 49 days) sets no practical limit.
        using var timeout = parameters.TimeoutUs is { } us && us < MaxTimeoutUs ? new CancellationTokenSource(TimeSpan.FromMicroseconds(us), _time) : null;
        using var linked = timeout is null ? null : CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
        var token = linked?.Token ?? cancellationToken;

        var decoded = Stopwatch.GetTimestamp();
        Onnx.RunResult result;
        long queued, ran;
        try
        {
            await _slots.WaitAsync(token).ConfigureAwait(false);
            queued = Stopwatch.GetTimestamp();
            try
            {
                result = runtime.Run(variant.Name, inputs, outputs, threshold, token);
            }
            finally
            {
                _slots.Release();
            }

            ran = Stopwatch.GetTimestamp();
        }
        catch (OperationCanceledException) when (timeout?.IsCancellationRequested == true && !cancellationToken.IsCancellationRequested)
        {
            throw new RpcException(new Status(StatusCode.DeadlineExceeded, $"The request's timeout of {parameters.TimeoutUs} µs passed before model '{definition.Name}' answered; raise the timeout or retry later."));
        }
        catch (OperationCanceledException)
        {
            throw new RpcException(new Status(StatusCode.Cancelled, "The request was cancelled by the caller."));
        }
        catch (OnnxRuntimeException e)
        {
            InferenceLog.RunFailed(_logger, e, definition.Name, variant.Name);
            throw new RpcException(new Status(StatusCode.Internal, $"Model '{definition.Name}' variant '{variant.Name}' failed to run: {e.Message}"));
        }

        var response = new ModelInferResponse
        {
            ModelName = definition.Name,
            ModelVersion = definition.Version,
            Id = request.Id,
        };
        TensorCodec.EncodeOutputs(result.Outputs, raw: request.RawInputContents.Count > 0, response);
        var batch = definition.HasBatchDimension ? (int)inputs[0].Shape[0] : 1;
        var p = response.Parameters;
        p[ParameterNames.Variant] = new InferParameter { StringParam = variant.Name };
        if (result.ExitStages is { } stages)
        {
            p[ParameterNames.ExitStage] = new InferParameter { Int64Param = stages.Max() };
            if (stages.Length > 1)
            {
                p[ParameterNames.ExitStages] = new InferParameter { StringParam = string.Join(",", stages.Select(s => s.ToString(CultureInfo.InvariantCulture))) };
            }

            p[ParameterNames.ExitThreshold] = new InferParameter { DoubleParam = threshold };
        }

        p[ParameterNames.QueueUs] = new InferParameter { Int64Param = Microseconds(decoded, queued) };
        p[ParameterNames.ComputeUs] = new InferParameter { Int64Param = Microseconds(queued, ran) };
        p[ParameterNames.BatchSize] = new InferParameter { Int64Param = batch };

        var finished = Stopwatch.GetTimestamp();
        served.Statistics.RecordSuccess(
            batch,
            new RequestTimings(Nanoseconds(decoded, queued), Nanoseconds(started, decoded), Nanoseconds(queued, ran), Nanoseconds(ran, finished), Nanoseconds(started, finished)),
            _time.GetUtcNow().ToUnixTimeMilliseconds());
        return response;
    }

    /// <summary>
    /// The variant a request runs on: the pinned one, the model's early-exit variant when only a
    /// threshold is given, else the default. The foundation serves no SLO-driven choice yet.
    /// </summary>
    private static (VariantDefinition Variant, double Threshold) ChooseVariant(ServedModel served, RequestParameters parameters)
    {
        var runtime = served.Runtime;
        var name = served.Definition.Name;
        VariantDefinition variant;
        if (parameters.Variant is { } pinned)
        {
            variant = served.Definition.FindVariant(pinned)
                ?? throw new RpcException(new Status(StatusCode.InvalidArgument, $"effserve.variant '{pinned}' is not a variant of model '{name}' (variants: {string.Join(", ", served.Definition.Variants.Select(v => v.Name))})."));
            if (!runtime.IsLoaded(pinned))
            {
                var reason = runtime.Variants.First(v => v.Definition.Name == pinned).SkipReason;
                throw new RpcException(new Status(StatusCode.Unavailable, $"Variant '{pinned}' of model '{name}' cannot run on this replica: {reason}"));
            }
        }
        else if (parameters.ExitThreshold is not null)
        {
            variant = served.Definition.Variants.FirstOrDefault(v => v.Kind == VariantKind.EarlyExit && runtime.IsLoaded(v.Name))
                ?? throw new RpcException(new Status(StatusCode.InvalidArgument, $"effserve.exit_threshold needs an early-exit variant, and model '{name}' has none loaded."));
        }
        else
        {
            var fallback = runtime.DefaultVariant
                ?? throw new RpcException(new Status(StatusCode.Unavailable, $"Model '{name}' has no variant that can run on this replica."));
            variant = served.Definition.FindVariant(fallback)!;
        }

        if (parameters.ExitThreshold is not null && variant.Kind != VariantKind.EarlyExit)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"effserve.exit_threshold applies to early-exit variants; variant '{variant.Name}' is {variant.Kind.ToManifestName()}."));
        }

        return (variant, parameters.ExitThreshold ?? variant.ExitThreshold);
    }

    private static long Microseconds(long from, long to) => (long)Stopwatch.GetElapsedTime(from, to).TotalMicroseconds;

    private static long Nanoseconds(long from, long to) => Stopwatch.GetElapsedTime(from, to).Ticks * 100;
}
