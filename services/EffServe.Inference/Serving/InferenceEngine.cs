using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using EffServe.Contracts.Inference;
using EffServe.Core.Accounting;
using EffServe.Core.Protocol;
using EffServe.Core.Statistics;
using EffServe.Core.Tensors;
using EffServe.Core.Zoo;
using EffServe.ServiceDefaults.Instrumentation;
using Grpc.Core;
using Microsoft.Extensions.Options;
using Microsoft.ML.OnnxRuntime;

namespace EffServe.Inference.Serving;

/// <summary>
/// Where a request comes from. Online requests are served against their budget; background
/// requests (asynchronous batch jobs) have no budget, run at the lowest priority on capacity no
/// online request is waiting for, are never dropped for a deadline and are left out of the online
/// SLO metrics.
/// </summary>
public enum InferenceOrigin
{
    Online,
    Background,
}

/// <summary>
/// One inference from request to response: resolve the model, read the parameters, validate and
/// decode the tensors, wait for a run slot, run the chosen variant, encode the outputs and
/// report where the time went, what the request cost (energy, device time, money, carbon) and
/// how it went (spans and metrics, docs/observability.md).
/// </summary>
public sealed class InferenceEngine
{
    private const long MaxTimeoutUs = (uint.MaxValue - 1L) * 1000;

    private readonly ModelRepository _models;
    private readonly RunSlots _slots;
    private readonly TimeProvider _time;
    private readonly InferenceInstrumentation _telemetry;
    private readonly Accountant _accountant;
    private readonly double _capacityUtilisation;
    private readonly ConcurrentDictionary<string, LoadTracker> _load = new(StringComparer.Ordinal);
    private readonly ILogger<InferenceEngine> _logger;

    public InferenceEngine(
        ModelRepository models,
        RunSlots slots,
        TimeProvider time,
        InferenceInstrumentation telemetry,
        Accountant accountant,
        IOptions<AccountingOptions> accounting,
        ILogger<InferenceEngine> logger)
    {
        _models = models;
        _slots = slots;
        _time = time;
        _telemetry = telemetry;
        _accountant = accountant;
        _capacityUtilisation = accounting.Value.CapacityUtilisation;
        _logger = logger;
        telemetry.ObserveLoad(ReadLoad);
        telemetry.ObserveIdlePower(ReadIdlePower);
    }

    public Task<ModelInferResponse> InferAsync(ModelInferRequest request, CancellationToken cancellationToken) =>
        InferAsync(request, InferenceOrigin.Online, cancellationToken);

    public async Task<ModelInferResponse> InferAsync(ModelInferRequest request, InferenceOrigin origin, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        var model = Resolve(request.ModelName, request.ModelVersion);
        var name = model.Definition.Name;
        var load = LoadOf(name);
        load.RecordArrival();
        using var activity = StartRequest(model.Definition);
        var trace = new RequestTrace(name, load);
        try
        {
            var response = await InferAsync(model, request, started, trace, activity, cancellationToken).ConfigureAwait(false);
            Completed(trace, started, "ok", activity);
            return response;
        }
        catch (RpcException e)
        {
            model.Statistics.RecordFailure(Nanoseconds(started, Stopwatch.GetTimestamp()));
            Failed(trace, started, e.StatusCode, e.Status.Detail, activity);
            throw;
        }
        catch (OperationCanceledException)
        {
            model.Statistics.RecordFailure(Nanoseconds(started, Stopwatch.GetTimestamp()));
            Failed(trace, started, StatusCode.Cancelled, "cancelled", activity);
            throw;
        }
        catch (Exception e)
        {
            // Nothing unexpected leaves as UNKNOWN: it is logged in full and answered as INTERNAL.
            model.Statistics.RecordFailure(Nanoseconds(started, Stopwatch.GetTimestamp()));
            InferenceLog.RequestFailed(_logger, e, name);
            Failed(trace, started, StatusCode.Internal, e.GetType().Name, activity);
            throw new RpcException(new Status(StatusCode.Internal, $"Model '{name}' failed the request unexpectedly ({e.GetType().Name}); the service log has the details."));
        }
        finally
        {
            load.RecordDeparture();
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

    private async Task<ModelInferResponse> InferAsync(ServedModel served, ModelInferRequest request, long started, RequestTrace trace, Activity? activity, CancellationToken cancellationToken)
    {
        var definition = served.Definition;
        var runtime = served.Runtime;
        var parameters = RequestParameters.Parse(request.Parameters);
        trace.SloMs = parameters.SloMs;
        var (variant, threshold) = ChooseVariant(served, parameters);
        var device = variant.Provider == ExecutionProvider.Cpu ? Device.Cpu : Device.Gpu;
        trace.Tags = new ModelTags(definition.Name, variant.Name, device.ToLabel());
        if (activity is not null)
        {
            activity.SetTag(SpanAttributes.Variant, variant.Name);
            activity.SetTag(SpanAttributes.Device, trace.Tags.Device);
            if (parameters.SloMs is { } slo)
            {
                activity.SetTag(SpanAttributes.SloMs, slo);
            }
        }

        var inputs = TensorCodec.DecodeInputs(request, definition);
        var outputs = TensorCodec.ResolveOutputs(request, definition);

        // A timeout beyond what a timer can wait (about 49 days) sets no practical limit.
        using var timeout = parameters.TimeoutUs is { } us && us < MaxTimeoutUs ? new CancellationTokenSource(TimeSpan.FromMicroseconds(us), _time) : null;
        using var linked = timeout is null ? null : CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
        var token = linked?.Token ?? cancellationToken;

        var decoded = Stopwatch.GetTimestamp();
        var meter = _accountant.MeterFor(device);
        Onnx.RunResult? result = null;
        RunEnergy energy;
        long queued, ran;
        try
        {
            // A request that finds a run slot free does not queue: no queue span for it.
            var waiting = _slots.WaitAsync(token);
            if (!waiting.IsCompletedSuccessfully)
            {
                trace.Load.EnterQueue();
                using var queue = activity is null ? null : _telemetry.ActivitySource.StartActivity(SpanNames.Queue);
                try
                {
                    await waiting.ConfigureAwait(false);
                }
                finally
                {
                    trace.Load.LeaveQueue();
                }
            }

            queued = Stopwatch.GetTimestamp();
            if (parameters.SloMs is { } budget)
            {
                activity?.SetTag(SpanAttributes.BudgetLeftMs, budget - Stopwatch.GetElapsedTime(started, queued).TotalMilliseconds);
            }

            using var run = StartRun(activity);
            var runStarted = Stopwatch.GetTimestamp();
            var window = meter.BeginRun();
            try
            {
                result = runtime.Run(variant.Name, inputs, outputs, threshold, token);
            }
            finally
            {
                _slots.Release();
                ran = Stopwatch.GetTimestamp();
                // Exactly once, even when the run failed: a failed run's energy stays in the meter's
                // total and is charged to no request.
                energy = meter.EndRun(window, new RunUsage(Nanoseconds(queued, ran), result?.CpuNanoseconds ?? 0));
            }

            if (run is not null)
            {
                DescribeRun(run, result, energy, runStarted);
            }
        }
        catch (OperationCanceledException) when (timeout?.IsCancellationRequested == true && !cancellationToken.IsCancellationRequested)
        {
            _telemetry.Dropped(definition.Name, "timeout");
            throw new RpcException(new Status(StatusCode.DeadlineExceeded, $"The request's timeout of {parameters.TimeoutUs} µs passed before model '{definition.Name}' answered; raise the timeout or retry later."));
        }
        catch (OperationCanceledException)
        {
            _telemetry.Dropped(definition.Name, "cancelled");
            throw new RpcException(new Status(StatusCode.Cancelled, "The request was cancelled by the caller."));
        }
        catch (OnnxRuntimeException e)
        {
            InferenceLog.RunFailed(_logger, e, definition.Name, variant.Name);
            throw new RpcException(new Status(StatusCode.Internal, $"Model '{definition.Name}' variant '{variant.Name}' failed to run: {e.Message}"));
        }

        var ranResult = result!;
        var response = new ModelInferResponse
        {
            ModelName = definition.Name,
            ModelVersion = definition.Version,
            Id = request.Id,
        };
        TensorCodec.EncodeOutputs(ranResult.Outputs, raw: request.RawInputContents.Count > 0, response);
        var batch = definition.HasBatchDimension ? (int)inputs[0].Shape[0] : 1;
        var p = response.Parameters;
        p[ParameterNames.Variant] = new InferParameter { StringParam = variant.Name };
        if (ranResult.ExitStages is { } stages)
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

        // The run served this request alone, so its whole energy and device time are the request's.
        // (A batch of several requests is split by Accountant.Split over each one's work: executed
        // stage-samples for early exit, samples otherwise.)
        var charge = _accountant.ChargeWhole(energy);
        _accountant.TotalsFor(definition.Name).Add(charge);
        p[AccountingParameters.EnergyMj] = new InferParameter { DoubleParam = charge.EnergyMillijoules };
        p[AccountingParameters.EnergySource] = new InferParameter { StringParam = charge.Source.ToLabel() };
        p[AccountingParameters.CostUsd] = new InferParameter { DoubleParam = charge.CostUsd };
        p[AccountingParameters.CarbonMg] = new InferParameter { DoubleParam = charge.CarbonMg };
        Record(trace, activity, ranResult, batch, threshold, charge, decoded, queued, ran);

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

    /// <summary>
    /// The request's span, or null when the call is not traced: spans under a server span that was
    /// sampled out would be dropped anyway, so none is made (nor the queue, run and stage spans under it).
    /// </summary>
    private Activity? StartRequest(ModelDefinition model)
    {
        if (Activity.Current is { Recorded: false })
        {
            return null;
        }

        var activity = _telemetry.ActivitySource.StartActivity(SpanNames.Infer);
        if (activity is { IsAllDataRequested: false })
        {
            activity.Dispose();
            return null;
        }

        activity?.SetTag(SpanAttributes.Model, model.Name);
        activity?.SetTag(SpanAttributes.ModelVersion, model.Version);
        return activity;
    }

    /// <summary>The run span: a child of the request, linked to it as a batch's span is linked to every request it serves.</summary>
    private Activity? StartRun(Activity? request) =>
        request is null ? null : _telemetry.ActivitySource.StartActivity(SpanNames.Run, ActivityKind.Internal, request.Context, links: [new ActivityLink(request.Context)]);

    /// <summary>The run span's attributes, and a child span per early-exit stage with the samples that entered it.</summary>
    private void DescribeRun(Activity run, Onnx.RunResult? result, RunEnergy energy, long runStarted)
    {
        // Model, variant and device are the request's (every request of a run shares them).
        run.SetTag(SpanAttributes.Requests, 1);
        run.SetTag(SpanAttributes.EnergyMj, energy.Nanojoules / 1e6);
        run.SetTag(SpanAttributes.EnergySource, energy.Source.ToLabel());
        if (result is null)
        {
            return;
        }

        run.SetTag(SpanAttributes.BatchSize, result.ExitStages?.Length ?? (int)result.StageSampleRuns);
        run.SetTag(SpanAttributes.StagesRun, result.StagesRun);
        run.SetTag(SpanAttributes.StageSamples, result.StageSampleRuns);
        run.SetTag(SpanAttributes.CpuUs, result.CpuNanoseconds / 1000.0);
        run.SetTag(SpanAttributes.CpuClock, result.CpuTimeScope == CpuClockScope.Thread ? "thread" : "process");
        foreach (var stage in result.Stages)
        {
            var start = run.StartTimeUtc + Stopwatch.GetElapsedTime(runStarted, stage.StartTimestamp);
            using var span = _telemetry.ActivitySource.StartActivity(SpanNames.Stage, ActivityKind.Internal, run.Context, startTime: new DateTimeOffset(start));
            if (span is null)
            {
                continue;
            }

            span.SetTag(SpanAttributes.Stage, stage.Stage);
            span.SetTag(SpanAttributes.SamplesIn, stage.SamplesIn);
            span.SetTag(SpanAttributes.SamplesExited, stage.SamplesExited);
            span.SetEndTime(start + Stopwatch.GetElapsedTime(stage.StartTimestamp, stage.EndTimestamp));
        }
    }

    /// <summary>Metrics and span attributes of a request that ran.</summary>
    private void Record(RequestTrace trace, Activity? activity, Onnx.RunResult result, int batch, double threshold, RequestCharge charge, long decoded, long queued, long ran)
    {
        var tags = trace.Tags;
        var compute = Stopwatch.GetElapsedTime(queued, ran).TotalSeconds;
        _telemetry.QueueWaited(tags, Stopwatch.GetElapsedTime(decoded, queued).TotalSeconds);
        _telemetry.RunCompleted(tags, batch, compute);
        if (result.ExitStages is { } stages)
        {
            _telemetry.EarlyExits(tags, stages);
        }

        _telemetry.Charged(tags, new ChargeReading(charge.Source.ToLabel(), charge.EnergyMillijoules, charge.DeviceSeconds, charge.CostUsd, charge.CarbonMg));
        trace.Load.RecordCompute(compute);
        if (activity is null)
        {
            return;
        }

        activity.SetTag(SpanAttributes.BatchSize, batch);
        if (result.ExitStages is { } exits)
        {
            activity.SetTag(SpanAttributes.ExitStage, exits.Max());
            activity.SetTag(SpanAttributes.ExitThreshold, threshold);
        }

        activity.SetTag(SpanAttributes.EnergyMj, charge.EnergyMillijoules);
        activity.SetTag(SpanAttributes.EnergySource, charge.Source.ToLabel());
        activity.SetTag(SpanAttributes.CostUsd, charge.CostUsd);
        activity.SetTag(SpanAttributes.CarbonMg, charge.CarbonMg);
    }

    private void Completed(RequestTrace trace, long started, string outcome, Activity? activity)
    {
        var elapsed = Stopwatch.GetElapsedTime(started);
        _telemetry.RequestCompleted(trace.Tags, outcome, elapsed.TotalSeconds);
        if (trace.SloMs is { } slo)
        {
            var met = elapsed.TotalMilliseconds <= slo;
            _telemetry.SloOutcome(trace.Tags, slo, met);
            activity?.SetTag(SpanAttributes.SloMet, met);
        }

        activity?.SetTag(SpanAttributes.Outcome, outcome);
    }

    private void Failed(RequestTrace trace, long started, StatusCode status, string detail, Activity? activity)
    {
        Completed(trace, started, OutcomeOf(status), activity);
        activity?.SetStatus(ActivityStatusCode.Error, detail);
    }

    /// <summary>A gRPC status as a metric outcome: deadline_exceeded, invalid_argument ...</summary>
    private static string OutcomeOf(StatusCode status) => status switch
    {
        StatusCode.OK => "ok",
        StatusCode.Cancelled => "cancelled",
        StatusCode.InvalidArgument => "invalid_argument",
        StatusCode.DeadlineExceeded => "deadline_exceeded",
        StatusCode.NotFound => "not_found",
        StatusCode.ResourceExhausted => "resource_exhausted",
        StatusCode.Unavailable => "unavailable",
        StatusCode.Internal => "internal",
        _ => "error",
    };

    private LoadTracker LoadOf(string model) => _load.GetOrAdd(model, static (_, time) => new LoadTracker(time), _time);

    private IEnumerable<LoadReading> ReadLoad()
    {
        foreach (var (model, load) in _load)
        {
            yield return new LoadReading(model, load.OfferedPerSecond(), load.CapacityPerSecond(_slots.Capacity, _capacityUtilisation), load.Active, load.Queued);
        }
    }

    /// <summary>Idle power of the CPUs, and of the GPU where NVML measures it or a GPU variant is served.</summary>
    private IEnumerable<PowerReading> ReadIdlePower()
    {
        _accountant.Poll();
        var gpu = _accountant.Gpu.Source == EnergySource.Measured
            || _models.Models.Any(m => m.Runtime.Variants.Any(v => v.Loaded && v.Definition.Provider != ExecutionProvider.Cpu));
        foreach (var meter in _accountant.Meters)
        {
            if (meter.Device == Device.Cpu || gpu)
            {
                yield return new PowerReading(meter.Device.ToLabel(), meter.Source.ToLabel(), meter.IdleWatts);
            }
        }
    }

    private static long Microseconds(long from, long to) => (long)Stopwatch.GetElapsedTime(from, to).TotalMicroseconds;

    private static long Nanoseconds(long from, long to) => Stopwatch.GetElapsedTime(from, to).Ticks * 100;

    /// <summary>What the telemetry of one request needs to know as it goes.</summary>
    private sealed class RequestTrace(string model, LoadTracker load)
    {
        public LoadTracker Load { get; } = load;

        /// <summary>Until a variant is chosen, only the model is known.</summary>
        public ModelTags Tags { get; set; } = new(model, "", "");

        public double? SloMs { get; set; }
    }
}
