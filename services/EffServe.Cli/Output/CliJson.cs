using System.Text.Json;
using System.Text.Json.Serialization;

namespace EffServe.Cli.Output;

/// <summary>Writes the --json documents: indented, camelCase, nulls left out, no reflection.</summary>
public static class CliJson
{
    public static void Write(TextWriter writer, ModelsReport report) => Write(writer, report, CliJsonContext.Default.ModelsReport);

    public static void Write(TextWriter writer, InferReport report) => Write(writer, report, CliJsonContext.Default.InferReport);

    public static void Write(TextWriter writer, ErrorReport report) => Write(writer, report, CliJsonContext.Default.ErrorReport);

    private static void Write<T>(TextWriter writer, T value, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type)
    {
        writer.WriteLine(JsonSerializer.Serialize(value, type));
        writer.Flush();
    }
}

[JsonSourceGenerationOptions(
    WriteIndented = true,
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals)]
[JsonSerializable(typeof(ModelsReport))]
[JsonSerializable(typeof(InferReport))]
[JsonSerializable(typeof(ErrorReport))]
internal sealed partial class CliJsonContext : JsonSerializerContext;
