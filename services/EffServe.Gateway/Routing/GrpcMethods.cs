using System.Collections.Frozen;

namespace EffServe.Gateway.Routing;

/// <summary>How the gateway serves a gRPC method.</summary>
public enum MethodRoute
{
    /// <summary>Answered by the gateway itself (server-level calls, health, reflection, the zoo listing).</summary>
    Gateway,

    /// <summary>A unary call forwarded to a replica of the model named in field 1 of its message.</summary>
    ByModel,

    /// <summary>A streaming call forwarded to a replica of the model named in field 1 of its first message; every later message must name the same model.</summary>
    StreamByModel,

    /// <summary>A job call forwarded to a replica of the model its job id (field 1, "&lt;model&gt;.&lt;random&gt;") starts with.</summary>
    ByJobId,
}

/// <summary>One gRPC method the gateway serves.</summary>
/// <param name="Path">The method's HTTP/2 path, "/package.Service/Method".</param>
/// <param name="Route">How it is served.</param>
/// <param name="Guarded">Whether it needs an identity when the door is closed (every forwarded call does).</param>
public sealed record GatewayMethod(string Path, MethodRoute Route, bool Guarded)
{
    /// <summary>The method's own name, after the last '/'.</summary>
    public string Name => Path[(Path.LastIndexOf('/') + 1)..];
}

/// <summary>
/// The one list of gRPC methods the gateway serves, and how. A call is matched by its exact path
/// (gRPC paths are case-sensitive and carry nothing after the method name); any other path is
/// answered UNIMPLEMENTED before routing, the door or a replica see it.
/// </summary>
public static class GrpcMethods
{
    public const string Inference = "/inference.GRPCInferenceService/";
    public const string Zoo = "/effserve.v1.ZooService/";
    public const string Jobs = "/effserve.v1.JobService/";

    private static readonly GatewayMethod[] s_all =
    [
        new(Inference + "ServerLive", MethodRoute.Gateway, Guarded: false),
        new(Inference + "ServerReady", MethodRoute.Gateway, Guarded: false),
        new(Inference + "ServerMetadata", MethodRoute.Gateway, Guarded: false),
        new(Inference + "RepositoryIndex", MethodRoute.Gateway, Guarded: true),
        new(Inference + "RepositoryModelLoad", MethodRoute.Gateway, Guarded: true),
        new(Inference + "RepositoryModelUnload", MethodRoute.Gateway, Guarded: true),
        new(Inference + "ModelStatistics", MethodRoute.Gateway, Guarded: true),
        new(Inference + "ModelInfer", MethodRoute.ByModel, Guarded: true),
        new(Inference + "ModelMetadata", MethodRoute.ByModel, Guarded: true),
        new(Inference + "ModelReady", MethodRoute.ByModel, Guarded: true),
        new(Inference + "ModelConfig", MethodRoute.ByModel, Guarded: true),
        new(Inference + "ModelStreamInfer", MethodRoute.StreamByModel, Guarded: true),
        new(Zoo + "ListModels", MethodRoute.Gateway, Guarded: true),
        new(Jobs + "SubmitJob", MethodRoute.ByModel, Guarded: true),
        new(Jobs + "GetJob", MethodRoute.ByJobId, Guarded: true),
        new(Jobs + "CancelJob", MethodRoute.ByJobId, Guarded: true),
        new(Jobs + "StreamJobResults", MethodRoute.ByJobId, Guarded: true),
        new("/grpc.health.v1.Health/Check", MethodRoute.Gateway, Guarded: false),
        new("/grpc.health.v1.Health/Watch", MethodRoute.Gateway, Guarded: false),
        new("/grpc.health.v1.Health/List", MethodRoute.Gateway, Guarded: false),
        new("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", MethodRoute.Gateway, Guarded: true),
        new("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", MethodRoute.Gateway, Guarded: true),
    ];

    private static readonly FrozenDictionary<string, GatewayMethod> s_byPath = s_all.ToFrozenDictionary(m => m.Path, StringComparer.Ordinal);

    private static readonly FrozenSet<string> s_names = s_all.Select(m => m.Name).ToFrozenSet(StringComparer.Ordinal);

    public static IReadOnlyList<GatewayMethod> All => s_all;

    /// <summary>The method whose path is exactly <paramref name="path"/>.</summary>
    public static bool TryGet(string? path, out GatewayMethod method) => s_byPath.TryGetValue(path ?? "", out method!);

    /// <summary>Whether <paramref name="name"/> is the name of a method the gateway serves (for bounded metric tags).</summary>
    public static bool IsKnownMethodName(string name) => s_names.Contains(name);
}
