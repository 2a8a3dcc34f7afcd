using EffServe.Inference;
using EffServe.ServiceDefaults;

var builder = WebApplication.CreateBuilder(args);
builder.AddInferenceService();

await using var app = builder.Build();
if (!app.CheckSettings())
{
    return 2; // every bad setting was logged in one line
}

app.MapInferenceService();
if (!app.LoadZoo())
{
    return 2; // disposing the app flushes the console logger's queue: every problem reaches the log
}

return await app.ServeAsync(app.Part(), "choose another with --urls http://HOST:PORT (under `make run`, PORT=N moves the services to N+100 and up)");

/// <summary>Entry point of the inference service.</summary>
public partial class Program;
