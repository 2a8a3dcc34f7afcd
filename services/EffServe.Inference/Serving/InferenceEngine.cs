using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using EffServe.Contracts.Inference;
using EffServe.Core.Accounting;
using EffServe.Core.Batching;
using EffServe.Core.Protocol;
using EffServe.Core.Selection;
using EffServe.Core.Statistics;
using EffServe.Core.Tensors;
using EffServe.Core.Zoo;
using EffServe.Inference.Rpc;
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
    private readonly string _host;
    private readonly ConcurrentDictionary<string, LoadTracker> _load = new(StringComparer.Ordinal);
    private readonly ILogger<InferenceEngine> _logger;
    private readonly SelectionOptions _selection;
    private readonly BatchScheduler _scheduler;
    private readonly CpuPressureSampler _pressure;

    public InferenceEngine(
        ModelRepository models,
        RunSlots slots,
        TimeProvider time,
        InferenceInstrumentation telemetry,
        Accountant accountant,
        IOptions<AccountingOptions> accounting,
        IOptions<SelectionOptions> selection,
        CpuPressureSampler pressure,
        ILogger<InferenceEngine> logger)
    {
        _pressure = pressure;
        _models = models;
        _slots = slots;
        _time = time;
        _telemetry = telemetry;
        _accountant = accountant;
        _capacityUtilisation = accounting.Value.CapacityUtilisation;
        _host = accounting.Value.Host.Length > 0 ? accounting.Value.Host : Environment.MachineName;
        _logger = logger;
        _selection = selection.Value;
        _scheduler = new BatchScheduler(slots, time, _selection, RunBatch);
        telemetry.ObserveLoad(ReadLoad);
        telemetry.ObserveIdlePower(ReadIdlePower);
    }

    /// <summary>Serves an online request.</summary>
    public Task<ModelInferResponse> InferAsync(ModelInferRequest request, CancellationToken cancellationToken) =>
        InferAsync(request, InferenceOrigin.Online, null, cancellationToken);

    /// <summary>Serves a request of <paramref name="origin"/>.</summary>
    public Task<ModelInferResponse> InferAsync(ModelInferRequest request, InferenceOrigin origin, CancellationToken cancellationToken) =>
        InferAsync(request, origin, null, cancellationToken);

    /// <summary>Serves a request of <paramref name="origin"/> whose gRPC deadline (UTC; <see cref="DateTime.MaxValue"/> or null: none) bounds its budget.</summary>
    public async Task<ModelInferResponse> InferAsync(ModelInferRequest request, InferenceOrigin origin, DateTime? grpcDeadline, CancellationToken cancellationToken)
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
            var response = await InferAsync(model, request, origin, grpcDeadline, started, trace, activity, cancellationToken).ConfigureAwait(false);
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

    /// <summary>Online requests waiting for a run slot (all models).</summary>
    public int QueuedRequests => _scheduler.Queued;

    /// <summary>Background requests waiting for a run slot.</summary>
    public int QueuedBackgroundRequests => _scheduler.QueuedBackground;

    /// <summary>Finds a served model and version, or fails with NOT_FOUND naming what exists.</summary>
    public ServedModel Resolve(string name, string version)
    {
        if (string.IsNullOrEmpty(name))
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"The model name is empty; models served here: {string.Join(", ", _models.Names)}."));
        }

        if (!_models.TryGet(name, out var model))
        {
            throw new RpcException(new Status(StatusCode.NotFound, $"Model '{StatusDetails.Quote(name)}' is not served here; models served here: {string.Join(", ", _models.Names)}."));
        }

        if (version.Length > 0 && version != model.Definition.Version)
        {
            throw new RpcException(new Status(StatusCode.NotFound, $"Model '{name}' has no version '{StatusDetails.Quote(version)}'; versions: {model.Definition.Version}."));
        }

        return model;
    }

    private async Task<ModelInferResponse> InferAsync(ServedModel served, ModelInferRequest request, InferenceOrigin origin, DateTime? grpcDeadline, long started, RequestTrace trace, Activity? activity, CancellationToken cancellationToken)
    {
        var definition = served.Definition;
        var parameters = RequestParameters.Parse(request.Parameters);
        var settings = _selection.For(definition.Name);
        var background = origin == InferenceOrigin.Background;
        trace.SloMs = background ? null : parameters.SloMs;
        ValidateHints(served, parameters);

        var inputs = TensorCodec.DecodeInputs(request, definition);
        var outputs = TensorCodec.ResolveOutputs(request, definition);
        var samples = definition.HasBatchDimension ? BatchTensors.Samples(inputs) : 1;

        // The budget: the tightest of effserve.slo_ms (or the model's default), the gRPC deadline
        // and Triton's timeout. Background work has none.
        var arrived = _time.GetTimestamp();
        var grpcLeft = grpcDeadline is { } d && d != DateTime.MaxValue ? d - _time.GetUtcNow().UtcDateTime : (TimeSpan?)null;
        var budget = background ? RequestBudget.None : RequestBudget.Tightest(_time, arrived, parameters.SloMs ?? settings.DefaultSloMs, grpcLeft, parameters.TimeoutUs);
        // grpc-dotnet ends a call whose deadline passes with a bare "Deadline Exceeded"; the service
        // answers a little before it, saying where the time went (the answer must also reach the
        // caller before its own timer gives up).
        var answerBy = background || grpcLeft is not { } grpcBudget ? (TimeSpan?)null : grpcBudget - DeadlineMargin(grpcBudget);
        if (answerBy <= TimeSpan.Zero)
        {
            _telemetry.Shed(definition.Name, "deadline");
            throw new RpcException(new Status(StatusCode.DeadlineExceeded, string.Create(CultureInfo.InvariantCulture, $"Model '{definition.Name}' cannot answer within the call's gRPC deadline: {Math.Max(0, grpcLeft!.Value.TotalMilliseconds):0.###} ms of it were left when the request reached the model, too little to queue and run it; retry with a longer deadline.")));
        }

        var rank = background ? long.MaxValue : parameters.Priority == 0 ? _selection.DefaultPriority : parameters.Priority;
        var ahead = background ? 0 : _scheduler.WorkAheadMs(rank, budget.Deadline);
        var decision = Select(served, parameters, settings, samples, ahead, budget.RemainingMs(_time, _time.GetTimestamp()));
        var choice = decision.Choice!;
        var variant = definition.FindVariant(choice.Variant)!;
        var threshold = choice.Threshold ?? variant.ExitThreshold;
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

        // A timeout beyond what a timer can wait (about 49 days) sets no practical limit.
        using var timeout = parameters.TimeoutUs is { } us && us < MaxTimeoutUs ? new CancellationTokenSource(TimeSpan.FromMicroseconds(us), _time) : null;
        using var deadline = answerBy is { } wait ? new CancellationTokenSource(wait, _time) : null;
        using var linked = timeout is null && deadline is null ? null : CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout?.Token ?? default, deadline?.Token ?? default);
        var token = linked?.Token ?? cancellationToken;

        // An SLO budget that passes while the request waits takes it out of the queue (a request
        // already running finishes: its compute is spent).
        var droppable = !background && decision.Verdict != SelectionVerdict.BestEffort;
        // A budget too large to count down in ticks (effserve.slo_ms of billions of years) sets no
        // deadline; like a timeout beyond what a timer can wait, it sets no practical limit.
        using var sloTimer = droppable && budget.Source == BudgetSource.Slo && budget.RemainingMs(_time, _time.GetTimestamp()) is { } sloLeft && sloLeft < MaxTimeoutUs / 1000
            ? new CancellationTokenSource(TimeSpan.FromMilliseconds(Math.Max(0, sloLeft)), _time)
            : null;
        using var queueLinked = sloTimer is null ? null : CancellationTokenSource.CreateLinkedTokenSource(token, sloTimer.Token);

        var latency = served.Latency[variant.Name];
        var latencyThreshold = variant.Kind == VariantKind.EarlyExit ? threshold : (double?)null;
        var pending = new PendingRequest
        {
            Model = served,
            Variant = variant.Name,
            Threshold = threshold,
            LatencyThreshold = latencyThreshold,
            Latency = latency,
            Inputs = inputs,
            Outputs = outputs,
            Samples = samples,
            MaxBatchSamples = MaxBatchSamples(definition, settings, latency),
            PredictedMs = choice.RunMs ?? 0,
            Budget = droppable ? budget : budget with { Deadline = long.MaxValue },
            RunToken = token,
            Span = activity?.Context,
        };
        var key = BatchTensors.JoinKey(inputs, outputs) is { } join && definition.HasBatchDimension
            ? string.Create(CultureInfo.InvariantCulture, $"{definition.Name}|{variant.Name}|{threshold:R}|{join}")
            : $"{definition.Name}|{Guid.NewGuid():N}";

        var decoded = Stopwatch.GetTimestamp();
        var queuedAt = _time.GetUtcNow();
        var admission = _scheduler.Enqueue(pending, key, rank, droppable, background, queueLinked?.Token ?? token, out var outcomeTask);
        if (admission == Admission.QueueFull)
        {
            _telemetry.Shed(definition.Name, "queue_full");
            throw new RpcException(new Status(StatusCode.ResourceExhausted, _scheduler.QueueFullMessage(definition.Name, background)));
        }

        BatchOutcome outcome;
        var waited = admission == Admission.Queued;
        if (waited)
        {
            trace.Load.EnterQueue();
        }

        try
        {
            // A run in progress when the deadline comes is left to the other requests it serves (or
            // terminated, when none is left); this request answers now.
            outcome = await (deadline is null ? outcomeTask : outcomeTask.WaitAsync(deadline.Token)).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (sloTimer?.IsCancellationRequested == true && !token.IsCancellationRequested)
        {
            _telemetry.Dropped(definition.Name, "deadline");
            throw new RpcException(new Status(StatusCode.DeadlineExceeded, string.Create(CultureInfo.InvariantCulture, $"Model '{definition.Name}' dropped the request before running it: its effserve.slo_ms budget of {budget.BudgetMs:0.###} ms passed while it waited in the queue; retry with a larger budget or when the service is less loaded.")));
        }
        catch (OperationCanceledException) when (deadline?.IsCancellationRequested == true && !cancellationToken.IsCancellationRequested)
        {
            _telemetry.Dropped(definition.Name, "deadline");
            throw new RpcException(new Status(StatusCode.DeadlineExceeded, DeadlineMessage(definition.Name, grpcLeft!.Value, decoded, pending)));
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
        catch (RpcException e) when (e.StatusCode == StatusCode.DeadlineExceeded)
        {
            _telemetry.Dropped(definition.Name, "deadline");
            throw;
        }
        finally
        {
            if (waited)
            {
                trace.Load.LeaveQueue();
                QueueSpan(activity, queuedAt, pending);
            }
        }

        var queued = outcome.RunStarted;
        var ran = outcome.RunEnded;
        if (!background)
        {
            served.Calibration.Observe(choice.RawCompletionMs, Stopwatch.GetElapsedTime(started, ran).TotalMilliseconds);
        }

        if (parameters.SloMs is { } sloBudget)
        {
            activity?.SetTag(SpanAttributes.BudgetLeftMs, sloBudget - Stopwatch.GetElapsedTime(started, queued).TotalMilliseconds);
        }

        var response = new ModelInferResponse
        {
            ModelName = definition.Name,
            ModelVersion = definition.Version,
            Id = request.Id,
        };
        TensorCodec.EncodeOutputs(outcome.Outputs, raw: request.RawInputContents.Count > 0, response);
        var p = response.Parameters;
        p[ParameterNames.Variant] = new InferParameter { StringParam = variant.Name };
        p[ParameterNames.Policy] = new InferParameter { StringParam = settings.Policy };
        if (outcome.ExitStages is { } stages)
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
        p[ParameterNames.BatchSize] = new InferParameter { Int64Param = outcome.BatchSamples };

        // The request's share of its run (the whole run when it ran alone): split by work,
        // executed stage-samples for early exit, samples otherwise.
        var charge = outcome.Charge;
        _accountant.TotalsFor(definition.Name).Add(charge);
        p[AccountingParameters.EnergyMj] = new InferParameter { DoubleParam = charge.EnergyMillijoules };
        p[AccountingParameters.EnergySource] = new InferParameter { StringParam = charge.Source.ToLabel() };
        p[AccountingParameters.CostUsd] = new InferParameter { DoubleParam = charge.CostUsd };
        p[AccountingParameters.CarbonMg] = new InferParameter { DoubleParam = charge.CarbonMg };
        Record(trace, activity, outcome.ExitStages, outcome.BatchSamples, threshold, charge, decoded, queued, ran);

        var finished = Stopwatch.GetTimestamp();
        served.Statistics.RecordSuccess(
            samples,
            new RequestTimings(Nanoseconds(decoded, queued), Nanoseconds(started, decoded), Nanoseconds(queued, ran), Nanoseconds(ran, finished), Nanoseconds(started, finished)),
            _time.GetUtcNow().ToUnixTimeMilliseconds());
        return response;
    }

    /// <summary>
    /// Runs one batch on a slot the scheduler holds: joins the inputs, runs the variant, splits the
    /// outputs and the run's energy and device time among the requests by their work, and teaches
    /// the latency model what the run took.
    /// </summary>
    private void RunBatch(IReadOnlyList<PendingRequest> batch, CancellationToken terminate)
    {
        var first = batch[0];
        var served = first.Model;
        var definition = served.Definition;
        var variant = definition.FindVariant(first.Variant)!;
        var meter = _accountant.MeterFor(variant.Provider == ExecutionProvider.Cpu ? Device.Cpu : Device.Gpu);
        var inputs = batch.Count == 1 ? first.Inputs : BatchTensors.Concatenate([.. batch.Select(r => r.Inputs)]);
        var samples = batch.Sum(r => r.Samples);

        var current = Activity.Current;
        try
        {
            using var run = StartRun(batch);
            var runStarted = Stopwatch.GetTimestamp();
            var window = meter.BeginRun();
            Onnx.RunResult? result = null;
            RunEnergy energy;
            long ran;
            try
            {
                result = served.Runtime.Run(variant.Name, inputs, first.Outputs, first.Threshold, terminate);
            }
            catch (OnnxRuntimeException e)
            {
                InferenceLog.RunFailed(_logger, e, definition.Name, variant.Name);
                throw new RpcException(new Status(StatusCode.Internal, $"Model '{definition.Name}' variant '{variant.Name}' failed to run: {e.Message}"));
            }
            finally
            {
                ran = Stopwatch.GetTimestamp();
                // Exactly once, even when the run failed: a failed run's energy stays in the meter's
                // total and is charged to no request.
                energy = meter.EndRun(window, new RunUsage(Nanoseconds(runStarted, ran), result?.CpuNanoseconds ?? 0));
            }

            if (run is not null)
            {
                DescribeRun(run, result, energy, runStarted, batch.Count);
            }

            first.Latency.Observe(samples, Stopwatch.GetElapsedTime(runStarted, ran).TotalMilliseconds, first.LatencyThreshold);
            var parts = BatchTensors.Split(result.Outputs, [.. batch.Select(r => r.Samples)]);
            var stages = new int[batch.Count][];
            var work = new long[batch.Count];
            var row = 0;
            for (var i = 0; i < batch.Count; i++)
            {
                var n = batch[i].Samples;
                stages[i] = result.ExitStages is { } all ? all[row..(row + n)] : null!;
                work[i] = result.ExitStages is null ? n : stages[i].Sum();
                row += n;
            }

            var charges = batch.Count == 1 ? [_accountant.ChargeWhole(energy)] : _accountant.Split(energy, work);
            var tags = new ModelTags(definition.Name, variant.Name, (variant.Provider == ExecutionProvider.Cpu ? Device.Cpu : Device.Gpu).ToLabel());
            RecordRun(tags, samples, Stopwatch.GetElapsedTime(runStarted, ran).TotalSeconds, charges, result.ExitStages);
            for (var i = 0; i < batch.Count; i++)
            {
                batch[i].Complete(new BatchOutcome(parts[i], result.ExitStages is null ? null : stages[i], samples, charges[i], runStarted, ran, result));
            }
        }
        finally
        {
            Activity.Current = current;
        }
    }

    /// <summary>
    /// How long before a call's gRPC deadline the service answers it: a tenth of the time the call
    /// had, 2 to 50 ms, room for the answer to be written and to travel before grpc-dotnet's and the
    /// caller's timers fire (a request still waiting then would rarely have finished in time).
    /// </summary>
    private static TimeSpan DeadlineMargin(TimeSpan left) => TimeSpan.FromMilliseconds(Math.Clamp(left.TotalMilliseconds * 0.1, 2, 50));

    /// <summary>Why a request could not answer before its gRPC deadline: how long it waited, and how long its run had taken.</summary>
    private static string DeadlineMessage(string model, TimeSpan left, long decoded, PendingRequest pending)
    {
        var now = Stopwatch.GetTimestamp();
        var where = pending.Dequeued == 0
            ? string.Create(CultureInfo.InvariantCulture, $"it waited {Stopwatch.GetElapsedTime(decoded, now).TotalMilliseconds:0.#} ms in the model's queue behind other work and had not started; the replica is busy: retry later or with a longer deadline.")
            : string.Create(CultureInfo.InvariantCulture, $"it waited {Stopwatch.GetElapsedTime(decoded, pending.Dequeued).TotalMilliseconds:0.#} ms in the model's queue and its run had taken {Stopwatch.GetElapsedTime(pending.Dequeued, now).TotalMilliseconds:0.#} ms without finishing; retry with a longer deadline or a smaller batch.");
        return string.Create(CultureInfo.InvariantCulture, $"Model '{model}' could not answer within the call's gRPC deadline ({left.TotalMilliseconds:0.#} ms after the request reached the model): {where}");
    }

    /// <summary>
    /// How the service batches <paramref name="definition"/>: the most samples one run may hold (the
    /// model's own limit and EffServe:Selection:MaxBatchSize; 1 without a batch dimension), and the
    /// gain in samples per second a larger batch must bring (EffServe:Selection:MinBatchingGain).
    /// </summary>
    public (int Limit, double MinGain) BatchingLimits(ModelDefinition definition) =>
        (BatchLimit(definition, _selection.For(definition.Name)), _selection.MinBatchingGain);

    private static int BatchLimit(ModelDefinition definition, ModelSelection settings) =>
        definition.HasBatchDimension ? Math.Max(1, Math.Min(settings.MaxBatchSize, definition.MaxBatchSize)) : 1;

    /// <summary>Most samples one batch of the model's variant may hold: 1 where batching does not pay.</summary>
    private int MaxBatchSamples(ModelDefinition definition, ModelSelection settings, LatencyModel latency)
    {
        var limit = BatchLimit(definition, settings);
        return limit == 1 ? 1 : latency.LargestUsefulBatch(limit, _selection.MinBatchingGain);
    }

    /// <summary>Checks the pin and the threshold before any work: they name what must exist.</summary>
    private static void ValidateHints(ServedModel served, RequestParameters parameters)
    {
        var runtime = served.Runtime;
        var name = served.Definition.Name;
        if (parameters.Variant is { } pinned)
        {
            var variant = served.Definition.FindVariant(pinned)
                ?? throw new RpcException(new Status(StatusCode.InvalidArgument, $"effserve.variant '{StatusDetails.Quote(pinned)}' is not a variant of model '{name}' (variants: {string.Join(", ", served.Definition.Variants.Select(v => v.Name))})."));
            if (!runtime.IsLoaded(pinned))
            {
                var reason = runtime.Variants.First(v => v.Definition.Name == pinned).SkipReason;
                throw new RpcException(new Status(StatusCode.Unavailable, $"Variant '{pinned}' of model '{name}' cannot run on this replica: {reason}"));
            }

            if (parameters.ExitThreshold is not null && variant.Kind != VariantKind.EarlyExit)
            {
                throw new RpcException(new Status(StatusCode.InvalidArgument, $"effserve.exit_threshold applies to early-exit variants; variant '{variant.Name}' is {variant.Kind.ToManifestName()}."));
            }
        }
        else if (parameters.ExitThreshold is not null && !served.Definition.Variants.Any(v => v.Kind == VariantKind.EarlyExit && runtime.IsLoaded(v.Name)))
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, $"effserve.exit_threshold needs an early-exit variant, and model '{name}' has none loaded."));
        }

        if (runtime.DefaultVariant is null)
        {
            throw new RpcException(new Status(StatusCode.Unavailable, $"Model '{name}' has no variant that can run on this replica."));
        }
    }

    /// <summary>
    /// The variant (and threshold) a request runs on. A pin, or a threshold without a pin (which
    /// means the early-exit variant), narrows the candidates; the model's policy chooses among
    /// them within the request's floor and cost cap; a request nothing can serve in time is shed
    /// or served by the fastest, as configured.
    /// </summary>
    private SelectionDecision Select(ServedModel served, RequestParameters parameters, ModelSelection settings, int samples, double ahead, double? budgetMs)
    {
        var name = served.Definition.Name;
        var candidates = Candidates(served, parameters, samples, ahead);
        var pinned = parameters.Variant is not null || parameters.ExitThreshold is not null;
        var policy = pinned ? s_pinned : SelectionPolicies.BuiltIn.Get(settings.Policy);
        var busy = _selection.Calibrate && _pressure.Utilisation >= _selection.BusyUtilisation;
        var request = new SelectionRequest(budgetMs, parameters.MinAccuracy ?? settings.DefaultMinAccuracy, parameters.MaxCostUsd, busy);
        var decision = Selector.Decide(policy, candidates, request, settings.Variant ?? served.Runtime.DefaultVariant!, settings.WhenNothingFits);
        switch (decision.Verdict)
        {
            case SelectionVerdict.Unsatisfiable:
                throw new RpcException(new Status(StatusCode.InvalidArgument, $"Model '{name}' cannot serve the request as asked: {decision.Reason}. Lower effserve.min_accuracy or raise effserve.max_cost_usd."));
            case SelectionVerdict.ShedDeadline:
                _telemetry.Shed(name, "deadline");
                throw new RpcException(new Status(StatusCode.DeadlineExceeded, $"Model '{name}' shed the request at once: {decision.Reason}. Retry with a larger budget or when the service is less loaded."));
            default:
                return decision;
        }
    }

    /// <summary>
    /// A pin leaves one candidate: it serves when it fits the budget; when it does not, the
    /// model's WhenNothingFits decides, as for any other policy.
    /// </summary>
    private static readonly ISelectionPolicy s_pinned = new SloAwarePolicy();

    /// <summary>Every loaded variant the request may run on, with its profiled accuracy and predicted time and cost; early exit once per threshold of its profile's grid.</summary>
    private List<Candidate> Candidates(ServedModel served, RequestParameters parameters, int samples, double ahead)
    {
        var runtime = served.Runtime;
        var list = new List<Candidate>();
        // Predictions carry what the model's recent requests took beyond theirs (docs/slo.md, "Calibration").
        var excess = _selection.Calibrate ? served.Calibration.ExcessMs : 0;
        foreach (var state in runtime.Variants)
        {
            var v = state.Definition;
            if (!state.Loaded || (parameters.Variant is { } pin && pin != v.Name) || (parameters.ExitThreshold is not null && v.Kind != VariantKind.EarlyExit))
            {
                continue;
            }

            var latency = served.Latency[v.Name];
            var device = v.Provider == ExecutionProvider.Cpu ? Device.Cpu : Device.Gpu;
            IEnumerable<(double? Threshold, double? Accuracy)> options = v.Kind != VariantKind.EarlyExit
                ? [(null, v.Profile?.Accuracy)]
                : parameters.ExitThreshold is { } asked
                    ? [(asked, v.Profile?.Thresholds.FirstOrDefault(t => t.Threshold == asked)?.Accuracy ?? (asked == v.ExitThreshold ? v.Profile?.Accuracy : null))]
                    : parameters.Variant is not null
                        ? [(v.ExitThreshold, v.Profile?.Accuracy)]
                        : ThresholdOptions(v);
            foreach (var (threshold, accuracy) in options)
            {
                var run = latency.PredictMs(samples, threshold);
                var cost = run is { } ms ? _accountant.Price(0, (long)(ms * 1e6), EnergySource.Modelled, device).CostUsd : (double?)null;
                var own = threshold is null || threshold == v.ExitThreshold;
                list.Add(new Candidate(v.Name, threshold, accuracy, run, ahead, cost, own && v.Name == runtime.DefaultVariant, own, latency.ProfiledMs(samples, threshold), excess));
            }
        }

        return list;
    }

    /// <summary>An early-exit variant's thresholds: its profile's grid and its own.</summary>
    private static IEnumerable<(double? Threshold, double? Accuracy)> ThresholdOptions(VariantDefinition v)
    {
        var grid = v.Profile?.Thresholds ?? [];
        foreach (var point in grid)
        {
            yield return (point.Threshold, point.Accuracy);
        }

        if (!grid.Any(t => t.Threshold == v.ExitThreshold))
        {
            yield return (v.ExitThreshold, v.Profile?.Accuracy);
        }
    }

    /// <summary>The queue span of a request that waited, from its arrival in the queue to its run.</summary>
    private void QueueSpan(Activity? request, DateTimeOffset queuedAt, PendingRequest pending)
    {
        if (request is null)
        {
            return;
        }

        var current = Activity.Current;
        using (var queue = _telemetry.ActivitySource.StartActivity(SpanNames.Queue, ActivityKind.Internal, request.Context, startTime: queuedAt))
        {
            queue?.SetEndTime((pending.Dequeued != 0 ? pending.DequeuedAt : _time.GetUtcNow()).UtcDateTime);
        }

        Activity.Current = current;
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

    /// <summary>The run span: a child of the batch's first request, linked to every request it serves; null when none is traced.</summary>
    private Activity? StartRun(IReadOnlyList<PendingRequest> batch)
    {
        var traced = batch.Where(r => r.Span is not null).Select(r => r.Span!.Value).ToList();
        return traced.Count == 0 ? null : _telemetry.ActivitySource.StartActivity(SpanNames.Run, ActivityKind.Internal, traced[0], links: [.. traced.Select(c => new ActivityLink(c))]);
    }

    /// <summary>The run span's attributes, and a child span per early-exit stage with the samples that entered it.</summary>
    private void DescribeRun(Activity run, Onnx.RunResult? result, RunEnergy energy, long runStarted, int requests)
    {
        // Model, variant and device are the request's (every request of a run shares them).
        run.SetTag(SpanAttributes.Requests, requests);
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

    /// <summary>A run's metrics, once per run: its samples, time, exit stages, and the device time and carbon of all its shares.</summary>
    private void RecordRun(ModelTags tags, int samples, double seconds, IReadOnlyList<RequestCharge> charges, int[]? exitStages)
    {
        double deviceSeconds = 0, carbonMg = 0;
        foreach (var charge in charges)
        {
            deviceSeconds += charge.DeviceSeconds;
            carbonMg += charge.CarbonMg;
        }

        _telemetry.RunCompleted(tags, samples, seconds, deviceSeconds, carbonMg);
        if (exitStages is not null)
        {
            _telemetry.EarlyExits(tags, exitStages);
        }
    }

    /// <summary>Metrics and span attributes of a request that ran.</summary>
    private void Record(RequestTrace trace, Activity? activity, int[]? exitStages, int batch, double threshold, RequestCharge charge, long decoded, long queued, long ran)
    {
        var tags = trace.Tags;
        _telemetry.QueueWaited(tags, Stopwatch.GetElapsedTime(decoded, queued).TotalSeconds);
        _telemetry.Charged(tags, new ChargeReading(charge.Source.ToLabel(), charge.EnergyMillijoules, charge.CostUsd));
        trace.Load.RecordCompute(Stopwatch.GetElapsedTime(queued, ran).TotalSeconds);
        if (activity is null)
        {
            return;
        }

        activity.SetTag(SpanAttributes.BatchSize, batch);
        activity.SetTag(SpanAttributes.QueueUs, Microseconds(decoded, queued));
        activity.SetTag(SpanAttributes.ComputeUs, Microseconds(queued, ran));
        if (exitStages is { } exits)
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
                yield return new PowerReading(_host, meter.Device.ToLabel(), meter.Source.ToLabel(), meter.IdleWatts);
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
