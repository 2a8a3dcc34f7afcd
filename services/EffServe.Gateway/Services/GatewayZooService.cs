using EffServe.Contracts.Zoo;
using EffServe.Gateway.Routing;
using Grpc.Core;

namespace EffServe.Gateway.Services;

/// <summary>effserve.v1.ZooService through the gateway: each model's listing from one of its healthy replicas.</summary>
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
            var model = await _inference.AskOneAsync(replicas, async channel =>
            {
                var listing = await new ZooService.ZooServiceClient(channel)
                    .ListModelsAsync(new ListModelsRequest { Name = replicas.Model }, deadline: context.Deadline, cancellationToken: context.CancellationToken);
                return listing.Models.FirstOrDefault();
            }).ConfigureAwait(false);
            response.Models.Add(model ?? new ZooModel { Name = replicas.Model, Ready = false });
        }

        return response;
    }
}
