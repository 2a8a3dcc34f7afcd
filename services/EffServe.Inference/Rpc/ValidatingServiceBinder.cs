using System.Reflection;
using Google.Protobuf;
using Google.Protobuf.Reflection;
using Grpc.AspNetCore.Server;
using Grpc.Core;

namespace EffServe.Inference.Rpc;

/// <summary>
/// Binds a generated gRPC service so that a request body that is not valid protobuf is refused
/// with INVALID_ARGUMENT ("the request is not a valid inference.ModelInferRequest: ...") and one
/// debug line in the log, instead of UNKNOWN and a stack trace at Error.
/// </summary>
/// <remarks>
/// Why the marshaller: grpc-dotnet parses the request of a unary or server-streaming call in its
/// call handler, before the interceptor pipeline runs, and answers any exception there as UNKNOWN;
/// interceptors never see it, and middleware sees only the finished response. The request
/// marshaller is the one place every parse goes through, for every kind of method, and an
/// <see cref="RpcException"/> thrown there is answered as it stands. grpc-dotnet takes a service's
/// methods with marshallers of one's own only through a <see cref="ServerServiceDefinition"/>
/// (the public <c>MapGrpcService(Func&lt;IServiceProvider, ServerServiceDefinition&gt;)</c>), so
/// each service is bound by its generated <c>BindService</c> into such a definition, its request
/// marshallers wrapped. Handlers run on one instance of the service per process, made on the first
/// call (the services keep no per-call state), so mapping constructs nothing.
/// </remarks>
internal sealed class ValidatingServiceBinder : ServiceBinderBase
{
    private readonly ServerServiceDefinition.Builder _definition = ServerServiceDefinition.CreateBuilder();
    private readonly Lazy<HandlerTable> _handlers;
    private readonly ILogger _logger;

    private ValidatingServiceBinder(Lazy<HandlerTable> handlers, ILogger logger)
    {
        _handlers = handlers;
        _logger = logger;
    }

    /// <summary>
    /// Maps <typeparamref name="TService"/> through its generated <paramref name="bind"/> (e.g.
    /// <c>GRPCInferenceService.BindService</c>), with request marshallers that refuse malformed
    /// protobuf cleanly. The endpoints name <typeparamref name="TService"/>, so that server
    /// reflection describes the service as it would one mapped by <c>MapGrpcService&lt;T&gt;</c>.
    /// </summary>
    public static GrpcServiceEndpointConventionBuilder Map<TService>(IEndpointRouteBuilder endpoints, Action<ServiceBinderBase, TService?> bind)
        where TService : class
    {
        var services = endpoints.ServiceProvider;
        var handlers = new Lazy<HandlerTable>(() =>
        {
            var table = new HandlerTable();
            bind(table, ActivatorUtilities.GetServiceOrCreateInstance<TService>(services));
            return table;
        });
        var binder = new ValidatingServiceBinder(handlers, services.GetRequiredService<ILogger<ValidatingServiceBinder>>());
        bind(binder, null);
        var definition = binder._definition.Build();
        var mapped = endpoints.MapGrpcService(definition);
        mapped.Add(endpoint =>
        {
            if (endpoint.Metadata.OfType<GrpcMethodMetadata>().LastOrDefault() is { } method)
            {
                endpoint.Metadata.Add(new GrpcMethodMetadata(typeof(TService), method.Method));
            }
        });
        return mapped;
    }

    public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, UnaryServerMethod<TRequest, TResponse>? handler)
    {
        var bound = Handler<UnaryServerMethod<TRequest, TResponse>>(method);
        _definition.AddMethod(Validating(method), (request, context) => bound.Value(request, context));
    }

    public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, ClientStreamingServerMethod<TRequest, TResponse>? handler)
    {
        var bound = Handler<ClientStreamingServerMethod<TRequest, TResponse>>(method);
        _definition.AddMethod(Validating(method), (requests, context) => bound.Value(requests, context));
    }

    public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, ServerStreamingServerMethod<TRequest, TResponse>? handler)
    {
        var bound = Handler<ServerStreamingServerMethod<TRequest, TResponse>>(method);
        _definition.AddMethod(Validating(method), (request, responses, context) => bound.Value(request, responses, context));
    }

    public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, DuplexStreamingServerMethod<TRequest, TResponse>? handler)
    {
        var bound = Handler<DuplexStreamingServerMethod<TRequest, TResponse>>(method);
        _definition.AddMethod(Validating(method), (requests, responses, context) => bound.Value(requests, responses, context));
    }

    private Lazy<THandler> Handler<THandler>(IMethod method)
        where THandler : Delegate =>
        new(() => (THandler)_handlers.Value.Find(method.FullName));

    /// <summary>The method with a request marshaller that answers a parse failure as INVALID_ARGUMENT.</summary>
    private Method<TRequest, TResponse> Validating<TRequest, TResponse>(Method<TRequest, TResponse> method)
        where TRequest : class
        where TResponse : class
    {
        var parse = method.RequestMarshaller.ContextualDeserializer;
        var type = MessageName(typeof(TRequest));
        var logger = _logger;
        var fullName = method.FullName;
        var marshaller = Marshallers.Create(method.RequestMarshaller.ContextualSerializer, context =>
        {
            try
            {
                return parse(context);
            }
            catch (InvalidProtocolBufferException e)
            {
                var reason = StatusDetails.Cap(e.Message, 512);
                InferenceLog.MalformedRequest(logger, fullName, type, reason);
                throw new RpcException(new Status(StatusCode.InvalidArgument, $"The request is not a valid {type}: {reason} Send the message that the service's .proto file defines for {fullName} (server reflection describes it)."));
            }
        });
        return new Method<TRequest, TResponse>(method.Type, method.ServiceName, method.Name, marshaller, method.ResponseMarshaller);
    }

    /// <summary>The protobuf name of a generated message type (inference.ModelInferRequest), or its .NET name.</summary>
    private static string MessageName(Type type) =>
        (type.GetProperty("Descriptor", BindingFlags.Public | BindingFlags.Static)?.GetValue(null) as MessageDescriptor)?.FullName ?? type.Name;

    /// <summary>The handlers a service instance binds, by method.</summary>
    private sealed class HandlerTable : ServiceBinderBase
    {
        private readonly Dictionary<string, Delegate> _handlers = new(StringComparer.Ordinal);

        public Delegate Find(string method) => _handlers[method];

        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, UnaryServerMethod<TRequest, TResponse>? handler) =>
            _handlers[method.FullName] = handler!;

        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, ClientStreamingServerMethod<TRequest, TResponse>? handler) =>
            _handlers[method.FullName] = handler!;

        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, ServerStreamingServerMethod<TRequest, TResponse>? handler) =>
            _handlers[method.FullName] = handler!;

        public override void AddMethod<TRequest, TResponse>(Method<TRequest, TResponse> method, DuplexStreamingServerMethod<TRequest, TResponse>? handler) =>
            _handlers[method.FullName] = handler!;
    }
}
