using EffServe.Inference;

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

app.Run();
return 0;

/// <summary>Entry point of the inference service.</summary>
public partial class Program;
