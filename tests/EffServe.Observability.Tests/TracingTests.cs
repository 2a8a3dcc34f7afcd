using System.Diagnostics;
using EffServe.Contracts.Inference;
using EffServe.Inference.Serving;
using EffServe.Observability.Tests.Support;
using EffServe.ServiceDefaults;
using EffServe.ServiceDefaults.Instrumentation;
using EffServe.Testing;
using EffServe.Contracts.Zoo;
using Grpc.Core;
using Grpc.Health.V1;
using Microsoft.Extensions.DependencyInjection;

namespace EffServe.Observability.Tests;

/// <summary>One trace per request across a real gateway and a real inference service, both on loopback.</summary>
[Collection(nameof(OneServerAtATime))]
public sealed class TracingTests
{
    [Fact]
    public async Task ModelInfer_ThroughGateway_OneTraceFromCallerToEarlyExitStages()
    {
        using var telemetry = new Telemetry();
        await using var service = await InferenceServer.StartAsync(RepoPaths.Zoo);
        await using var gateway = await StartGatewayAsync(service);
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(gateway.Channel);

        ActivityTraceId trace;
        using (var caller = Telemetry.Caller.StartActivity("caller"))
        {
            Assert.NotNull(caller);
            trace = caller.TraceId;
            var response = await client.ModelInferAsync(Digits.Request(0, batch: 6, threshold: 0.9, sloMs: 5000), cancellationToken: Digits.Ct);
            Assert.Equal("early-exit", Digits.Text(response, "effserve.variant"));
        }

        // Complete: the service's and the gateway's server spans have both ended.
        var spans = await telemetry.TraceAsync(trace, s => s.Count(x => x.Kind == ActivityKind.Server) >= 2);
        var byId = spans.ToDictionary(s => s.SpanId);
        Activity? Parent(Activity span) => byId.GetValueOrDefault(span.ParentSpanId);
        IEnumerable<Activity> Ancestors(Activity span)
        {
            for (var p = Parent(span); p is not null; p = Parent(p))
            {
                yield return p;
            }
        }

        // Every span but the caller's hangs under another span of the same trace.
        var root = Assert.Single(spans, s => s.ParentSpanId == default);
        Assert.Equal("caller", root.OperationName);
        Assert.All(spans.Where(s => s != root), s => Assert.True(Parent(s) is not null, $"Span {s.DisplayName} ({s.Source.Name}, {s.Kind}) has a parent outside the trace; spans: {string.Join("; ", spans.Select(x => $"{x.DisplayName}/{x.Source.Name}/{x.Kind}/{x.SpanId}<-{x.ParentSpanId}"))}"));

        // The service's request span under the service's server span, which hangs under the
        // gateway's call to the replica, which hangs under the gateway's own server span.
        var infer = Assert.Single(spans, s => s.OperationName == SpanNames.Infer);
        var serviceServer = Parent(infer)!;
        Assert.Equal((ActivityKind.Server, "Microsoft.AspNetCore"), (serviceServer.Kind, serviceServer.Source.Name));
        var gatewayCall = Parent(serviceServer)!;
        Assert.Equal((ActivityKind.Client, "System.Net.Http"), (gatewayCall.Kind, gatewayCall.Source.Name));
        var gatewayServer = Ancestors(gatewayCall).First(s => s.Kind == ActivityKind.Server);
        Assert.Equal("Microsoft.AspNetCore", gatewayServer.Source.Name);
        Assert.NotEqual(serviceServer, gatewayServer);
        Assert.Contains(root, Ancestors(gatewayServer));

        // The run under the request and linked to it; stages under the run. A run slot was free, so
        // the request did not queue and has no queue span.
        var run = Assert.Single(spans, s => s.OperationName == SpanNames.Run);
        Assert.Equal(infer, Parent(run));
        Assert.DoesNotContain(spans, s => s.OperationName == SpanNames.Queue);
        Assert.Contains(run.Links, l => l.Context.SpanId == infer.SpanId);
        var stages = spans.Where(s => s.OperationName == SpanNames.Stage).OrderBy(s => (int)s.GetTagItem(SpanAttributes.Stage)!).ToList();
        Assert.NotEmpty(stages);
        Assert.All(stages, s => Assert.Equal(run, Parent(s)));
        Assert.Equal(6, stages[0].GetTagItem(SpanAttributes.SamplesIn));
        Assert.Equal(6, stages.Sum(s => (int)s.GetTagItem(SpanAttributes.SamplesExited)!));
        for (var k = 1; k < stages.Count; k++)
        {
            // The samples that enter a stage are those that did not leave at the one before.
            Assert.Equal((int)stages[k - 1].GetTagItem(SpanAttributes.SamplesIn)! - (int)stages[k - 1].GetTagItem(SpanAttributes.SamplesExited)!, stages[k].GetTagItem(SpanAttributes.SamplesIn));
            Assert.True(stages[k].StartTimeUtc >= stages[k - 1].StartTimeUtc);
        }

        // The request's attributes.
        Assert.Equal(Digits.Model, infer.GetTagItem(SpanAttributes.Model));
        Assert.Equal("early-exit", infer.GetTagItem(SpanAttributes.Variant));
        Assert.Equal("cpu", infer.GetTagItem(SpanAttributes.Device));
        Assert.Equal(6, infer.GetTagItem(SpanAttributes.BatchSize));
        Assert.Equal(stages.Count, infer.GetTagItem(SpanAttributes.ExitStage));
        Assert.Equal(0.9, infer.GetTagItem(SpanAttributes.ExitThreshold));
        Assert.Equal(5000.0, infer.GetTagItem(SpanAttributes.SloMs));
        Assert.IsType<double>(infer.GetTagItem(SpanAttributes.BudgetLeftMs));
        Assert.Equal(true, infer.GetTagItem(SpanAttributes.SloMet));
        Assert.True((double)infer.GetTagItem(SpanAttributes.EnergyMj)! > 0);
        Assert.Equal("modelled", infer.GetTagItem(SpanAttributes.EnergySource));
        Assert.True((double)infer.GetTagItem(SpanAttributes.CostUsd)! > 0);
        Assert.Equal("thread", run.GetTagItem(SpanAttributes.CpuClock));
        Assert.True((long)infer.GetTagItem(SpanAttributes.QueueUs)! >= 0);
        Assert.True((long)infer.GetTagItem(SpanAttributes.ComputeUs)! > 0);

        // Named and tagged by OpenTelemetry's RPC conventions, the gRPC status on both server spans.
        foreach (var span in new[] { gatewayServer, gatewayCall, serviceServer })
        {
            Assert.Equal("inference.GRPCInferenceService/ModelInfer", span.DisplayName);
            Assert.Equal("grpc", span.GetTagItem("rpc.system"));
            Assert.Equal("inference.GRPCInferenceService", span.GetTagItem("rpc.service"));
            Assert.Equal("ModelInfer", span.GetTagItem("rpc.method"));
        }

        Assert.Equal(0, gatewayServer.GetTagItem("rpc.grpc.status_code"));
        Assert.Equal(0, serviceServer.GetTagItem("rpc.grpc.status_code"));
        Assert.Equal(ActivityStatusCode.Unset, gatewayServer.Status);
    }

    /// <summary>
    /// Server spans take the call's gRPC status, and the Error status for the codes the RPC
    /// conventions count as a server's error (DEADLINE_EXCEEDED), not for the caller's (NOT_FOUND);
    /// the gateway's server span for a forwarded call carries the status the replica answered.
    /// </summary>
    [Fact]
    public async Task FailedCalls_ServerSpans_CarryTheGrpcStatusAndErrorByTheConventions()
    {
        using var telemetry = new Telemetry();
        await using var service = await InferenceServer.StartAsync(RepoPaths.Zoo, new Dictionary<string, string?> { ["EffServe:Inference:MaxConcurrentRuns"] = "1" });
        await using var gateway = await StartGatewayAsync(service);
        var direct = new GRPCInferenceService.GRPCInferenceServiceClient(service.Channel);
        var throughGateway = new GRPCInferenceService.GRPCInferenceServiceClient(gateway.Channel);

        ActivityTraceId notFound, late;
        using (var caller = Telemetry.Caller.StartActivity("caller"))
        {
            notFound = caller!.TraceId;
            var unknown = Digits.Request(0);
            unknown.ModelName = "no-such-model";
            var e = await Assert.ThrowsAsync<RpcException>(() => direct.ModelInferAsync(unknown, cancellationToken: Digits.Ct).ResponseAsync);
            Assert.Equal(StatusCode.NotFound, e.StatusCode);
        }

        var slots = service.Services.GetRequiredService<RunSlots>();
        await slots.WaitAsync(Digits.Ct);
        try
        {
            using var caller = Telemetry.Caller.StartActivity("caller");
            late = caller!.TraceId;
            var request = Digits.Request(0);
            request.Parameters.Add("timeout", new InferParameter { Int64Param = 20_000 });
            var e = await Assert.ThrowsAsync<RpcException>(() => throughGateway.ModelInferAsync(request, cancellationToken: Digits.Ct).ResponseAsync);
            Assert.Equal(StatusCode.DeadlineExceeded, e.StatusCode);
        }
        finally
        {
            slots.Release();
        }

        var missing = Assert.Single(await telemetry.TraceAsync(notFound, s => s.Any(x => x.Kind == ActivityKind.Server)), s => s.Kind == ActivityKind.Server);
        Assert.Equal(5, missing.GetTagItem("rpc.grpc.status_code"));
        Assert.Equal(ActivityStatusCode.Unset, missing.Status);

        var servers = (await telemetry.TraceAsync(late, s => s.Count(x => x.Kind == ActivityKind.Server) >= 2)).Where(s => s.Kind == ActivityKind.Server).ToList();
        Assert.Equal(2, servers.Count);
        Assert.All(servers, s =>
        {
            Assert.Equal(4, s.GetTagItem("rpc.grpc.status_code"));
            Assert.Equal(ActivityStatusCode.Error, s.Status);
            Assert.Equal("DEADLINE_EXCEEDED", s.StatusDescription);
        });
    }

    /// <summary>The gateway's own gRPC calls to replicas (here: aggregating the zoo listing) are named and tagged by the RPC conventions.</summary>
    [Fact]
    public async Task GatewayOwnCalls_ClientSpans_NamedByMethodWithTheirStatus()
    {
        using var telemetry = new Telemetry();
        await using var service = await InferenceServer.StartAsync(RepoPaths.Zoo);
        await using var gateway = await StartGatewayAsync(service);

        ActivityTraceId trace;
        using (var caller = Telemetry.Caller.StartActivity("caller"))
        {
            trace = caller!.TraceId;
            await new ZooService.ZooServiceClient(gateway.Channel).ListModelsAsync(new ListModelsRequest(), cancellationToken: Digits.Ct);
        }

        const string Method = "effserve.v1.ZooService/ListModels";
        var spans = await telemetry.TraceAsync(trace, s => s.Count(x => x.Kind == ActivityKind.Server) >= 2);
        var call = Assert.Single(spans, s => s.Source.Name == "Grpc.Net.Client" && spans.Any(p => p.SpanId == s.ParentSpanId && p.Kind == ActivityKind.Server));
        Assert.Equal(Method, call.DisplayName);
        Assert.Equal("grpc", call.GetTagItem("rpc.system"));
        Assert.Equal("ListModels", call.GetTagItem("rpc.method"));
        Assert.Equal(0, call.GetTagItem("rpc.grpc.status_code"));
        Assert.Equal(ActivityStatusCode.Unset, call.Status);
        Assert.DoesNotContain(spans, s => s.DisplayName is "Grpc.Net.Client.GrpcOut" or "POST");
    }

    [Fact]
    public async Task ModelInfer_WaitsForARunSlot_QueueSpanUnderTheRequestBeforeTheRun()
    {
        using var telemetry = new Telemetry();
        await using var service = await InferenceServer.StartAsync(RepoPaths.Zoo, new Dictionary<string, string?> { ["EffServe:Inference:MaxConcurrentRuns"] = "1" });
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(service.Channel);
        var slots = service.Services.GetRequiredService<RunSlots>();

        ActivityTraceId trace;
        await slots.WaitAsync(Digits.Ct);
        using (var caller = Telemetry.Caller.StartActivity("caller"))
        {
            trace = caller!.TraceId;
            var call = client.ModelInferAsync(Digits.Request(0), cancellationToken: Digits.Ct).ResponseAsync;

            // Release the slot once the request is seen waiting in the queue.
            while (QueueDepth(telemetry) == 0)
            {
                await Task.Delay(10, Digits.Ct);
            }

            slots.Release();
            await call;
        }

        var spans = await telemetry.TraceAsync(trace, s => s.Any(x => x.Kind == ActivityKind.Server));
        var infer = Assert.Single(spans, s => s.OperationName == SpanNames.Infer);
        var queue = Assert.Single(spans, s => s.OperationName == SpanNames.Queue);
        var run = Assert.Single(spans, s => s.OperationName == SpanNames.Run);
        Assert.Equal(infer.SpanId, queue.ParentSpanId);
        Assert.Equal(infer.SpanId, run.ParentSpanId);
        Assert.True(run.StartTimeUtc >= queue.StartTimeUtc + queue.Duration, "The run began before the request left the queue.");
    }

    [Fact]
    public async Task HealthChecksAndProbes_AreNotTraced()
    {
        using var telemetry = new Telemetry();
        await using var service = await InferenceServer.StartAsync(RepoPaths.Zoo, new Dictionary<string, string?> { ["EffServe:Telemetry:MetricsUrl"] = "http://127.0.0.1:0" });
        await using var gateway = await StartGatewayAsync(service);

        // The gateway has probed its replica (WaitUntilServing waited for it) and answered health
        // checks; Prometheus scrapes the service.
        await Task.Delay(TimeSpan.FromMilliseconds(600), Digits.Ct);
        using (var http = new HttpClient())
        {
            _ = await http.GetStringAsync(service.Services.GetRequiredService<MetricsListener>().ScrapeUrl, Digits.Ct);
        }

        // Even a health check made inside a traced caller's span is not traced by either server.
        ActivityTraceId checks;
        using (var caller = Telemetry.Caller.StartActivity("caller"))
        {
            checks = caller!.TraceId;
            await new Health.HealthClient(service.Channel).CheckAsync(new HealthCheckRequest(), cancellationToken: Digits.Ct);
            await new Health.HealthClient(gateway.Channel).CheckAsync(new HealthCheckRequest { Service = Digits.Model }, cancellationToken: Digits.Ct);
        }

        using (Telemetry.Caller.StartActivity("caller"))
        {
            await new GRPCInferenceService.GRPCInferenceServiceClient(gateway.Channel).ModelInferAsync(Digits.Request(1), cancellationToken: Digits.Ct);
        }

        var spans = await telemetry.AllSpansAsync(s => s.Count(x => x.Kind == ActivityKind.Server) >= 2);
        Assert.Contains(spans, s => s.OperationName == SpanNames.Infer);
        Assert.DoesNotContain(spans, s => s.TraceId != checks && Describe(s).Contains("grpc.health", StringComparison.Ordinal));
        Assert.DoesNotContain(spans, s => s.TraceId == checks && s.Kind == ActivityKind.Server);
        // The only server spans are the two ModelInfer calls (gateway and service), named by method;
        // the health checks' client spans are there, their server spans are not.
        Assert.All(spans.Where(s => s.Kind == ActivityKind.Server), s =>
        {
            Assert.Equal("inference.GRPCInferenceService/ModelInfer", s.DisplayName);
            Assert.Equal("grpc", s.GetTagItem("rpc.system"));
            Assert.Equal("ModelInfer", s.GetTagItem("rpc.method"));
        });
        Assert.Equal(2, spans.Count(s => s.Kind == ActivityKind.Server));
    }

    /// <summary>
    /// A gateway that makes no spans of its own (telemetry off, or on without a collector) passes the
    /// caller's trace context through: its unrecorded activity never replaces the caller's.
    /// </summary>
    [Theory]
    [InlineData("EffServe:Telemetry:Enabled", "false")]
    [InlineData("EffServe:Telemetry:Traces", "Auto")]
    [InlineData("EffServe:Telemetry:Traces", "Off")]
    public async Task ModelInfer_GatewayMakesNoSpans_CallersContextReachesTheService(string key, string value)
    {
        using var telemetry = new Telemetry();
        await using var service = await InferenceServer.StartAsync(RepoPaths.Zoo);
        await using var gateway = await StartGatewayAsync(service, (key, value));
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(gateway.Channel);

        ActivityTraceId trace;
        using (var caller = Telemetry.Caller.StartActivity("caller"))
        {
            trace = caller!.TraceId;
            await client.ModelInferAsync(Digits.Request(2), cancellationToken: Digits.Ct);
        }

        // The gateway copies the caller's traceparent through untouched: still one trace, and the
        // service's server span hangs under the caller's own outgoing call, not under a span of the
        // gateway's. (Through the frame relay the gateway has no server span at all; through the
        // pipeline its server span, heard by this process's listener, is a sibling of the service's.)
        var spans = await telemetry.TraceAsync(trace, s => s.Any(x => x.OperationName == SpanNames.Infer));
        var infer = Assert.Single(spans, s => s.OperationName == SpanNames.Infer);
        var serviceServer = Assert.Single(spans, s => s.SpanId == infer.ParentSpanId && s.Kind == ActivityKind.Server);
        var above = new List<Activity>();
        for (var at = spans.SingleOrDefault(s => s.SpanId == serviceServer.ParentSpanId); at is not null; at = spans.SingleOrDefault(s => s.SpanId == at.ParentSpanId))
        {
            above.Add(at);
        }

        Assert.Equal("caller", Assert.Single(above, s => s.Kind == ActivityKind.Internal).DisplayName);
        Assert.DoesNotContain(above, s => s.Kind == ActivityKind.Server);
    }

    private static double QueueDepth(Telemetry telemetry)
    {
        var depth = 0.0;
        if (telemetry.CollectMetrics().TryGetValue("effserve.queue.depth", out var metric))
        {
            foreach (var point in metric.MetricPoints)
            {
                depth += point.GetSumLong();
            }
        }

        return depth;
    }

    private static string Describe(Activity span) =>
        span.DisplayName + " " + string.Join(" ", span.TagObjects.Select(t => $"{t.Key}={t.Value}"));

    private static async Task<GatewayServer> StartGatewayAsync(InferenceServer service, params (string Key, string Value)[] extra)
    {
        var settings = new Dictionary<string, string?>
        {
            ["EffServe:Gateway:Models:digits:Destinations:0"] = service.Address.GetLeftPart(UriPartial.Authority),
            ["EffServe:Gateway:HealthCheckInterval"] = "00:00:00.200",

            // The tests' in-memory exporter stands in for a collector.
            ["EffServe:Telemetry:Traces"] = "On",
        };
        foreach (var (key, value) in extra)
        {
            settings[key] = value;
        }

        var gateway = await GatewayServer.StartAsync(settings);
        await gateway.WaitUntilServingAsync(Digits.Model);
        return gateway;
    }
}
