using EffServe.Contracts.Jobs;

namespace EffServe.Gateway.Services;

/// <summary>
/// effserve.v1.JobService as the gateway describes it (server reflection lists it, so tools can
/// call it through the gateway). Its calls never reach this class: each is forwarded to a replica
/// of its model by the forwarded endpoints, which win over these.
/// </summary>
public sealed class GatewayJobService : JobService.JobServiceBase;
