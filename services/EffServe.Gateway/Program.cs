using EffServe.Gateway;

var builder = WebApplication.CreateBuilder(args);
builder.AddGateway();

await using var app = builder.Build();
if (!app.CheckSettings())
{
    return 2; // disposing the app flushes the console logger's queue: every problem reaches the log
}

app.MapGateway();
app.Run();
return 0;

/// <summary>Entry point of the gateway.</summary>
public partial class Program;
