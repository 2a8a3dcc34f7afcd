using EffServe.Contracts.Zoo;
using EffServe.Core.Accounting;
using EffServe.Core.Tensors;
using TensorSpec = EffServe.Contracts.Zoo.TensorSpec;
using LatencyEstimate = EffServe.Contracts.Zoo.LatencyEstimate;
using VariantProfile = EffServe.Contracts.Zoo.VariantProfile;
using EffServe.Core.Zoo;
using EffServe.Inference.Rpc;
using EffServe.Inference.Serving;
using Grpc.Core;

namespace EffServe.Inference.Services;

/// <summary>effserve.v1.ZooService: the models of this process with their variants and profiles.</summary>
public sealed class ZooGrpcService : ZooService.ZooServiceBase
{
    private readonly ModelRepository _models;
    private readonly Accountant _accountant;

    public ZooGrpcService(ModelRepository models, Accountant accountant)
    {
        _models = models;
        _accountant = accountant;
    }

    public override Task<ListModelsResponse> ListModels(ListModelsRequest request, ServerCallContext context)
    {
        IEnumerable<ServedModel> models = _models.Models.OrderBy(m => m.Definition.Name, StringComparer.Ordinal);
        if (request.Name.Length > 0)
        {
            if (!_models.TryGet(request.Name, out var one))
            {
                throw new RpcException(new Status(StatusCode.NotFound, $"Model '{StatusDetails.Quote(request.Name)}' is not served here; models served here: {string.Join(", ", _models.Names)}."));
            }

            models = [one];
        }

        var response = new ListModelsResponse();
        response.Models.Add(models.Select(ToZooModel));
        return Task.FromResult(response);
    }

    private ZooModel ToZooModel(ServedModel served)
    {
        var d = served.Definition;
        var model = new ZooModel
        {
            Name = d.Name,
            Version = d.Version,
            Task = d.Task,
            Description = d.Description,
            MaxBatchSize = d.MaxBatchSize,
            Revision = d.Revision,
            Ready = served.Runtime.IsReady,
            DefaultVariant = served.Runtime.DefaultVariant ?? "",
            EvalSamples = d.Evaluation?.Samples ?? 0,
            Accounting = ToAccounting(_accountant.TotalsFor(d.Name)),
        };
        model.Inputs.Add(d.Inputs.Select(ToSpec));
        model.Outputs.Add(d.Outputs.Select(ToSpec));
        model.Labels.Add(d.Labels);
        foreach (var state in served.Runtime.Variants)
        {
            var v = state.Definition;
            var variant = new ZooVariant
            {
                Name = v.Name,
                Kind = v.Kind.ToManifestName(),
                Provider = v.Provider.ToManifestName(),
                State = state.Loaded ? "LOADED" : "SKIPPED",
                Reason = state.SkipReason ?? "",
                Stages = v.Stages.Count,
                ExitThreshold = v.Kind == VariantKind.EarlyExit ? v.ExitThreshold : 0,
                Profile = ToProfile(v.Profile),
                LatencyModel = { served.Latency[v.Name].Snapshot().Select(ToEstimate) },
            };
            variant.Files.Add(v.Stages.Select(s => s.RelativePath));
            model.Variants.Add(variant);
        }

        return model;
    }

    private Contracts.Zoo.AccountingTotals ToAccounting(Core.Accounting.AccountingTotals totals) => new()
    {
        Requests = (ulong)totals.Requests,
        EnergyJoules = totals.Nanojoules / 1e9,
        EnergySource = totals.Source,
        CpuSeconds = totals.CpuNanoseconds / 1e9,
        GpuSeconds = totals.GpuNanoseconds / 1e9,
        CostUsd = _accountant.CostUsd(totals),
        CarbonGrams = _accountant.CarbonMg(totals.Nanojoules) / 1000,
    };

    private static TensorSpec ToSpec(Core.Tensors.TensorSpec spec)
    {
        var result = new TensorSpec { Name = spec.Name, Datatype = spec.DataType.ToWireName() };
        result.Shape.Add(spec.Shape);
        return result;
    }

    private static LatencyEstimate ToEstimate(Core.Selection.LatencyEstimate e)
    {
        var estimate = new LatencyEstimate { BatchSize = e.BatchSize, Observations = e.Observations };
        if (e.ProfileMs is { } profile)
        {
            estimate.ProfileMs = profile;
        }

        if (e.ObservedMs is { } observed)
        {
            estimate.ObservedMs = observed;
        }

        if (e.PredictedMs is { } predicted)
        {
            estimate.PredictedMs = predicted;
        }

        return estimate;
    }

    private static VariantProfile ToProfile(Core.Zoo.VariantProfile? profile)
    {
        var result = new VariantProfile();
        if (profile is null)
        {
            return result;
        }

        result.MeasuredAt = profile.MeasuredAt ?? "";
        result.Machine = profile.Machine ?? "";
        if (profile.Accuracy is { } accuracy)
        {
            result.Accuracy = accuracy;
        }

        result.Latency.Add(profile.Latency.Select(l => new Contracts.Zoo.LatencyPoint { BatchSize = l.BatchSize, P50Ms = l.P50Ms, P95Ms = l.P95Ms, ItemsPerSecond = l.ItemsPerSecond }));
        result.Thresholds.Add(profile.Thresholds.Select(t => new Contracts.Zoo.ThresholdPoint { Threshold = t.Threshold, Accuracy = t.Accuracy, MeanStages = t.MeanStages, MeanLatencyMs = t.MeanLatencyMs }));
        return result;
    }
}
