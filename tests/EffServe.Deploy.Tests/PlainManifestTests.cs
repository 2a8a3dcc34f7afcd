using EffServe.Deploy.Tests.Support;
using EffServe.Testing;
using YamlDotNet.RepresentationModel;

namespace EffServe.Deploy.Tests;

/// <summary>The kustomize base and overlays in k8s/: equal to the chart's defaults, valid, and following the same rules.</summary>
public sealed class PlainManifestTests
{
    private static readonly string[] s_bothModels = ["digits", "shapes"];

    public static TheoryData<Deployment> Overlays => new()
    {
        new Deployment("cpu", s_bothModels, [], null),
        new Deployment("gpu", s_bothModels, ["shapes"], null),
    };

    [Fact]
    public async Task Manifests_EqualTheChartsDefaults()
    {
        var check = await Tools.RunAsync("bash", [Path.Combine(RepoPaths.Root, "k8s", "generate.sh"), "--check"], TimeSpan.FromMinutes(1));

        Assert.True(check.ExitCode == 0, $"k8s/ differs from the chart; run k8s/generate.sh:\n{check.All}");
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public async Task Overlay_MatchesKubernetesSchemas(Deployment overlay)
    {
        var check = await Tools.ValidateSchemasAsync([.. ResourceFiles(Path.Combine(RepoPaths.Root, "k8s", "overlays", overlay.Name))]);

        Assert.True(check.ExitCode == 0, $"k8s/overlays/{overlay.Name} does not match the schemas:\n{check.All}");
    }

    [Theory]
    [MemberData(nameof(Overlays))]
    public void Overlay_FollowsTheRules(Deployment overlay)
    {
        var objects = ResourceFiles(Path.Combine(RepoPaths.Root, "k8s", "overlays", overlay.Name)).SelectMany(f => Manifest.Parse(File.ReadAllText(f)).Objects).ToList();

        var problems = Rules.Check(new Manifest(objects), overlay);

        Assert.True(problems.Count == 0, $"k8s/overlays/{overlay.Name}:\n{string.Join('\n', problems)}");
        Assert.All(objects, o => Assert.Equal("kustomize", Manifest.Label(o, "app.kubernetes.io/managed-by")));
    }

    /// <summary>The files a kustomization pulls in, following `resources` into folders (what `kustomize build` would read; no patches are used).</summary>
    private static List<string> ResourceFiles(string folder)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(File.ReadAllText(Path.Combine(folder, "kustomization.yaml"))));
        var root = (YamlMappingNode)stream.Documents[0].RootNode;
        Assert.False(root.Children.ContainsKey("patches"), "The plain manifests use no patches; the test reads resources only.");
        var files = new List<string>();
        foreach (var entry in (YamlSequenceNode)root.Children[new YamlScalarNode("resources")])
        {
            var path = Path.GetFullPath(Path.Combine(folder, ((YamlScalarNode)entry).Value!));
            files.AddRange(Directory.Exists(path) ? ResourceFiles(path) : [path]);
        }

        return files;
    }
}
