using System.Buffers;
using EffServe.Core.Jobs;
using Grpc.Core;
using Microsoft.Extensions.Options;

namespace EffServe.Gateway.Routing;

/// <summary>Where a forwarded call goes, or why it goes nowhere.</summary>
/// <param name="Model">The model the call's message names (the job id's model for job calls).</param>
/// <param name="Replicas">Its replicas; null when the call is refused.</param>
/// <param name="Status">The refusal's status; OK when the call is routed.</param>
/// <param name="Message">The refusal's message, for a person to act on.</param>
public readonly record struct RouteDecision(string Model, ReplicaSet? Replicas, StatusCode Status, string Message)
{
    public bool Routed => Replicas is not null;

    public static RouteDecision Refuse(StatusCode status, string message, string model = "") => new(model, null, status, message);
}

/// <summary>
/// The gateway's one routing decision, whatever carries the call: from the method, the routing
/// header and the complete first message to a model and its replicas, or a refusal with a status
/// and a message. The model is always the message's own (field 1, or the model a job id starts
/// with): a routing header that names another model is refused, so no header can steer a call
/// past the tenant allow-list to a model its message does not name. The caller has already been
/// admitted by the door; the tenant it was admitted as is checked against the model here.
/// </summary>
public sealed class CallRouter
{
    /// <summary>An optional header naming the model; when present it must agree with the message.</summary>
    public const string ModelHeader = "effserve-model";

    private readonly ModelRouter _replicas;
    private readonly GatewayOptions _options;

    public CallRouter(ModelRouter replicas, IOptions<GatewayOptions> options)
    {
        _replicas = replicas;
        _options = options.Value;
    }

    /// <summary>
    /// Routes a call of <paramref name="method"/> whose first frame (prefix included) is
    /// <paramref name="firstFrame"/>, compressed with <paramref name="encoding"/> when its flag says so.
    /// </summary>
    public RouteDecision Decide(GatewayMethod method, string? modelHeader, ReadOnlySequence<byte> firstFrame, string? encoding, string tenant)
    {
        switch (GrpcFrames.TryReadField1(firstFrame, encoding, _options.MaxRequestBytes, out var model, out var detail))
        {
            case PeekError.UnsupportedCompression:
                return RouteDecision.Refuse(StatusCode.Unimplemented, $"The gateway cannot read messages compressed with '{encoding}'; send them uncompressed, gzip or deflate.");
            case PeekError.TooLarge:
                return RouteDecision.Refuse(StatusCode.ResourceExhausted, $"The request message is larger than the gateway's limit of {_options.MaxRequestBytes} bytes: {detail}.");
            case PeekError.Malformed:
                return RouteDecision.Refuse(StatusCode.InvalidArgument, $"The request is not a well-formed gRPC message: {detail}.");
        }

        if (method.Route == MethodRoute.ByJobId)
        {
            if (!JobIds.TryParse(model, out var owner, out var problem))
            {
                return RouteDecision.Refuse(StatusCode.InvalidArgument, problem);
            }

            model = owner;
        }

        if (model.Length == 0)
        {
            return RouteDecision.Refuse(StatusCode.InvalidArgument, $"The request names no model; models served here: {string.Join(", ", _replicas.Names)}.");
        }

        if (!string.IsNullOrEmpty(modelHeader) && !string.Equals(modelHeader, model, StringComparison.Ordinal))
        {
            return RouteDecision.Refuse(StatusCode.InvalidArgument, $"The '{ModelHeader}' header names model '{Shorten(modelHeader)}' but the message names '{model}'; send the header with the message's model, or leave it out.", model);
        }

        if (!_replicas.TryGet(model, out var replicas) || !_options.Models.TryGetValue(model, out var route))
        {
            return RouteDecision.Refuse(StatusCode.NotFound, $"Model '{model}' is not served here; models served here: {string.Join(", ", _replicas.Names)}.");
        }

        if (route.AllowedTenants.Count > 0 && !route.AllowedTenants.Contains(tenant, StringComparer.Ordinal))
        {
            return RouteDecision.Refuse(StatusCode.PermissionDenied, $"Tenant '{tenant}' may not call model '{model}'.", model);
        }

        return new RouteDecision(model, replicas, StatusCode.OK, "");
    }

    private static string Shorten(string value) => value.Length <= 64 ? value : value[..64] + "…";
}
