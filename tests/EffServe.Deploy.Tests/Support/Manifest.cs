using System.Text.Json.Nodes;
using YamlDotNet.RepresentationModel;

namespace EffServe.Deploy.Tests.Support;

/// <summary>Kubernetes objects read from YAML, as JSON trees (every scalar a string).</summary>
public sealed class Manifest(IReadOnlyList<JsonObject> objects)
{
    public IReadOnlyList<JsonObject> Objects { get; } = objects;

    public static Manifest Parse(string yaml)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(yaml));
        var objects = new List<JsonObject>();
        foreach (var document in stream.Documents)
        {
            if (ToJson(document.RootNode) is JsonObject o)
            {
                objects.Add(o);
            }
        }

        return new Manifest(objects);
    }

    public IEnumerable<JsonObject> OfKind(string kind) => Objects.Where(o => Kind(o) == kind);

    public JsonObject? Find(string kind, string name) => OfKind(kind).FirstOrDefault(o => Name(o) == name);

    public static string Kind(JsonNode o) => (string?)o["kind"] ?? "";

    public static string Name(JsonNode o) => (string?)o["metadata"]?["name"] ?? "";

    public static string Label(JsonNode o, string key) => (string?)o["metadata"]?["labels"]?[key] ?? "";

    private static JsonNode? ToJson(YamlNode node) => node switch
    {
        YamlMappingNode map => new JsonObject(map.Children.Select(kv => KeyValuePair.Create(((YamlScalarNode)kv.Key).Value ?? "", ToJson(kv.Value)))),
        YamlSequenceNode seq => new JsonArray([.. seq.Children.Select(ToJson)]),
        YamlScalarNode { Value: null or "null" or "~", Style: YamlDotNet.Core.ScalarStyle.Plain } => null,
        YamlScalarNode scalar => JsonValue.Create(scalar.Value ?? ""),
        _ => null,
    };
}
