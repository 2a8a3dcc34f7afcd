using EffServe.Gateway;

var builder = WebApplication.CreateBuilder(args);
builder.AddGateway();

var app = builder.Build();
if (!app.CheckSettings())
{
    return 2;
}

app.MapGateway();
app.Run();
return 0;

/// <summary>Entry point of the gateway.</summary>
public partial class Program;
