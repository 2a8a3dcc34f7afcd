using EffServe.Gateway;
using EffServe.ServiceDefaults;

var builder = WebApplication.CreateBuilder(args);
builder.AddGateway();

await using var app = builder.Build();
if (!app.CheckSettings())
{
    return 2; // disposing the app flushes the console logger's queue: every problem reaches the log
}

app.MapGateway();
return await app.ServeAsync("the gateway", "choose another with `make run PORT=N` or --urls http://HOST:PORT");

/// <summary>Entry point of the gateway.</summary>
public partial class Program;
