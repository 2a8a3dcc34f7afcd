using EffServe.Contracts.Zoo;
using EffServe.Gateway.Routing;
using Grpc.Core;

namespace EffServe.Gateway.Services;

/// <summary>
/// effserve.v1.ZooService through the gateway: each model's listing as its healthy replicas
/// describe it, with the accounting totals summed over them.
/// </summary>
public sealed class GatewayZooService : ZooService.ZooServiceBase
{
    private readonly ModelRouter _router;
    private readonly GatewayInferenceService _inference;

    public GatewayZooService(ModelRouter router, GatewayInferenceService inference)
    {
        _router = router;
        _inference = inference;
    }

    public override async Task<ListModelsResponse> ListModels(ListModelsRequest request, ServerCallContext context)
    {
        IEnumerable<ReplicaSet> models = _router.Models.OrderBy(m => m.Model, StringComparer.Ordinal);
        if (request.Name.Length > 0)
        {
            if (!_router.TryGet(request.Name, out var one))
            {
                throw new RpcException(new Status(StatusCode.NotFound, $"Model '{request.Name}' is not served here; models served here: {string.Join(", ", _router.Names)}."));
            }

            models = [one];
        }

        var response = new ListModelsResponse();
        foreach (var replicas in models)
        {
            var listings = await _inference.AskAllAsync(replicas, async channel =>
            {
                var listing = await new ZooService.ZooServiceClient(channel)
                    .ListModelsAsync(new ListModelsRequest { Name = replicas.Model }, deadline: context.Deadline, cancellationToken: context.CancellationToken);
                return listing.Models.FirstOrDefault();
            }).ConfigureAwait(false);
            response.Models.Add(Combine(replicas.Model, listings));
        }

        return response;
    }

    /// <summary>
    /// One listing for the model: the first replica's description (replicas serve the same zoo)
    /// with every replica's accounting totals added up; not ready when no replica answered.
    /// </summary>
    internal static ZooModel Combine(string model, IReadOnlyList<ZooModel> listings)
    {
        if (listings.Count == 0)
        {
            return new ZooModel { Name = model, Ready = false };
        }

        var combined = listings[0].Clone();
        combined.Ready = listings.Any(l => l.Ready);
        combined.Accounting = listings.Aggregate((AccountingTotals?)null, (total, next) => Add(total, next.Accounting));
        return combined;
    }

    private static AccountingTotals? Add(AccountingTotals? total, AccountingTotals? next)
    {
        if (next is null)
        {
            return total;
        }

        if (total is null)
        {
            return next.Clone();
        }

        total.Requests += next.Requests;
        total.EnergyJoules += next.EnergyJoules;
        total.CpuSeconds += next.CpuSeconds;
        total.GpuSeconds += next.GpuSeconds;
        total.CostUsd += next.CostUsd;
        total.CarbonGrams += next.CarbonGrams;
        total.EnergySource = (total.EnergySource, next.EnergySource) switch
        {
            ("", var b) => b,
            (var a, "") => a,
            (var a, var b) when a == b => a,
            _ => "mixed",
        };
        return total;
    }
}
