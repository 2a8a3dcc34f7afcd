using EffServe.Inference;

var builder = WebApplication.CreateBuilder(args);
builder.AddInferenceService();

var app = builder.Build();
app.MapInferenceService();
if (!app.LoadZoo())
{
    return 2;
}

app.Run();
return 0;

/// <summary>Entry point of the inference service.</summary>
public partial class Program;
