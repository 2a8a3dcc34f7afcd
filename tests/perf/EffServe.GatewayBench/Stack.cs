using System.Globalization;
using System.Text;
using Grpc.Core;

namespace EffServe.GatewayBench;

/// <summary>A front door under test: where clients call, and which processes do its work.</summary>
/// <param name="Name">Arm name: direct, gateway, nginx, gateway:VARIANT, yarp-bare.</param>
/// <param name="Address">Where clients call.</param>
/// <param name="Process">The proxy process (none for direct).</param>
/// <param name="Headers">Metadata sent with every call (the effserve-model header arm), or null.</param>
internal sealed record Door(string Name, Uri Address, ChildProcess? Process, Metadata? Headers)
{
    /// <summary>The proxy's processes whose CPU time counts: nginx's master and workers, or the one .NET process.</summary>
    public IReadOnlyList<int> Pids { get; init; } = Process is null ? [] : [Process.Pid];
}

/// <summary>Starts the inference service, the gateway(s) and nginx, each a process of its own on loopback.</summary>
internal static class Stack
{
    /// <summary>The inference service serving <paramref name="model"/> from the repository's zoo.</summary>
    public static async Task<(ChildProcess Process, Uri Address)> StartServiceAsync(string root, string dll, string model)
    {
        var port = Ports.Free();
        var address = new Uri($"http://127.0.0.1:{port}");
        var process = ChildProcess.Start("inference service", "dotnet", [
            dll,
            "--contentRoot", Path.GetDirectoryName(dll)!,
            "--urls", address.ToString().TrimEnd('/'),
            $"--EffServe:Inference:ZooPath={Path.Combine(root, "zoo")}",
            $"--EffServe:Inference:Models:0={model}",
            "--Logging:LogLevel:Default=Warning",
        ], root);
        await Readiness.WaitReadyAsync(process, address, null).ConfigureAwait(false);
        return (process, address);
    }

    /// <summary>An EffServe gateway routing <paramref name="model"/> to the service, with extra settings for a variant.</summary>
    public static async Task<Door> StartGatewayAsync(string name, string root, string dll, Uri service, string model, GatewayVariant? variant)
    {
        var port = Ports.Free();
        var address = new Uri($"http://127.0.0.1:{port}");
        var arguments = new List<string>
        {
            dll,
            "--contentRoot", Path.GetDirectoryName(dll)!,
            "--urls", address.ToString().TrimEnd('/'),
            $"--EffServe:Gateway:Models:{model}:Destinations:0={service.ToString().TrimEnd('/')}",
            "--Logging:LogLevel:Default=Warning",
        };
        arguments.AddRange(variant?.Arguments ?? []);
        var process = ChildProcess.Start(name, "dotnet", arguments, root, variant?.Environment);
        await Readiness.WaitReadyAsync(process, address, null).ConfigureAwait(false);
        return new Door(name, address, process, null);
    }

    /// <summary>
    /// A bare YARP forwarder (this program in serve-yarp mode): Kestrel h2c in, YARP's forwarder out,
    /// nothing else; the floor of what any YARP-based gateway costs here. Server GC, like the gateway.
    /// </summary>
    public static async Task<Door> StartBareYarpAsync(string root, Uri service, GatewayVariant? variant)
    {
        var name = variant is null ? "yarp-bare" : $"yarp:{variant.Name}";
        var port = Ports.Free();
        var address = new Uri($"http://127.0.0.1:{port}");
        var self = typeof(Stack).Assembly.Location;
        var environment = new Dictionary<string, string>(variant?.Environment ?? new Dictionary<string, string>());
        environment.TryAdd("DOTNET_gcServer", "1");
        var process = ChildProcess.Start(name, "dotnet", [
            self, BareYarp.Verb,
            "--urls", address.ToString().TrimEnd('/'),
            "--destination", service.ToString().TrimEnd('/'),
            "--Logging:LogLevel:Default=Warning",
            .. variant?.Arguments ?? [],
        ], root, environment);
        await Readiness.WaitReadyAsync(process, address, null).ConfigureAwait(false);
        return new Door(name, address, process, null);
    }

    /// <summary>A plain TCP relay (this program in serve-pump mode) in front of the service.</summary>
    public static async Task<Door> StartTcpPumpAsync(string root, Uri service)
    {
        var port = Ports.Free();
        var address = new Uri($"http://127.0.0.1:{port}");
        var self = typeof(Stack).Assembly.Location;
        var process = ChildProcess.Start("tcp-pump", "dotnet", [self, TcpPump.Verb, "--listen", $"127.0.0.1:{port}", "--destination", $"127.0.0.1:{service.Port}"], root);
        await Readiness.WaitReadyAsync(process, address, null).ConfigureAwait(false);
        return new Door("tcp-pump", address, process, null);
    }

    /// <summary>nginx with one worker and grpc_pass to the service, from a configuration written to <paramref name="folder"/>.</summary>
    public static async Task<Door> StartNginxAsync(string nginx, string folder, Uri service)
    {
        var port = Ports.Free();
        var address = new Uri($"http://127.0.0.1:{port}");
        var conf = Path.Combine(folder, "nginx.conf");
        await File.WriteAllTextAsync(conf, NginxConfig(folder, service.Port, port)).ConfigureAwait(false);
        var (code, output) = Prerequisites.Run(nginx, ["-t", "-q", "-p", folder + "/", "-e", Path.Combine(folder, "error.log"), "-c", conf], folder);
        if (code != 0)
        {
            throw new BenchException($"nginx rejected the configuration {conf} (exit {code}):{Environment.NewLine}{output}");
        }

        var process = ChildProcess.Start("nginx", nginx, ["-p", folder + "/", "-e", Path.Combine(folder, "error.log"), "-c", conf], folder);
        await Readiness.WaitReadyAsync(process, address, Path.Combine(folder, "error.log")).ConfigureAwait(false);
        var workers = process.ChildPids();
        if (workers.Count != 1)
        {
            Log.Line($"warning: nginx has {workers.Count} worker processes; one was configured.");
        }

        return new Door("nginx", address, process, null) { Pids = [process.Pid, .. workers] };
    }

    /// <summary>
    /// One worker (as issue 3 says), h2c in, gRPC to a keep-alive pool of upstream connections out.
    /// keepalive_requests is raised on both sides so that nginx, like the gateway, never recycles a
    /// connection during the run (its default, 1000, would add reconnections to its tail).
    /// </summary>
    public static string NginxConfig(string folder, int upstreamPort, int listenPort)
    {
        var user = Environment.UserName == "root" ? "user root;\n" : "";
        var text = new StringBuilder();
        text.Append(CultureInfo.InvariantCulture, $$"""
            # Written by EffServe.GatewayBench for one run; started with nginx -p {{folder}}/ -c nginx.conf
            worker_processes 1;
            daemon off;
            master_process on;
            pid {{folder}}/nginx.pid;
            error_log {{folder}}/error.log warn;
            {{user}}
            events {
                worker_connections 1024;
            }

            http {
                access_log off;
                client_body_temp_path {{folder}}/client_body;
                proxy_temp_path {{folder}}/proxy;
                fastcgi_temp_path {{folder}}/fastcgi;
                uwsgi_temp_path {{folder}}/uwsgi;
                scgi_temp_path {{folder}}/scgi;
                keepalive_requests 1000000;

                upstream inference {
                    server 127.0.0.1:{{upstreamPort}};
                    keepalive 64;
                    keepalive_requests 1000000;
                }

                server {
                    listen 127.0.0.1:{{listenPort}} http2;
                    location / {
                        grpc_pass grpc://inference;
                    }
                }
            }

            """);
        return text.ToString();
    }
}
