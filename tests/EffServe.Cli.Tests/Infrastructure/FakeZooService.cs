using EffServe.Contracts.Zoo;
using Grpc.Core;

namespace EffServe.Cli.Tests.Infrastructure;

/// <summary>EffServe's zoo listing with canned models.</summary>
public sealed class FakeZooService : ZooService.ZooServiceBase
{
    public List<ZooModel> Models { get; } = [];

    public override Task<ListModelsResponse> ListModels(ListModelsRequest request, ServerCallContext context)
    {
        var response = new ListModelsResponse();
        if (request.Name.Length == 0)
        {
            response.Models.AddRange(Models);
            return Task.FromResult(response);
        }

        var model = Models.FirstOrDefault(m => m.Name == request.Name)
            ?? throw new RpcException(new Status(StatusCode.NotFound, $"model '{request.Name}' is not in the zoo"));
        response.Models.Add(model);
        return Task.FromResult(response);
    }
}
