using EffServe.Core.Zoo;
using EffServe.Onnx;
using EffServe.Zoo.Profiling;

namespace EffServe.Zoo.Tests.Profiling;

public sealed class ManifestProfileWriterTests
{
    private static readonly VariantProfile s_profile = new(
        "2026-11-25T18:00:00Z",
        "2-core test machine",
        0.985185,
        [new LatencyPoint(1, 0.01234, 0.02, 81040), new LatencyPoint(8, 0.05, 0.0612, 160000)],
        []);

    private static readonly VariantProfile s_earlyExitProfile = s_profile with
    {
        Thresholds = [new ThresholdPoint(0, 0.733333, 1, 0.005), new ThresholdPoint(1, 0.985185, 3, 0.0185)],
    };

    private const string Manifest = """
        # Header line one.

        # Header line two, after a blank line.
        name: m
        task: t # a trailing comment

        variants:
        - name: a
          kind: fp32
          profile:
            measured_at: "old"
            latency: []
          file: a.onnx

        - name: b
          kind: int8
          file: b.onnx
        """;

    [Fact]
    public void Apply_ExistingProfile_IsReplacedWhereItWas()
    {
        var text = ManifestProfileWriter.Apply(Manifest, new Dictionary<string, VariantProfile> { ["a"] = s_profile }).Text;

        var lines = text.Split('\n');
        var profile = Array.FindIndex(lines, l => l == "  profile:");
        var file = Array.FindIndex(lines, l => l == "  file: a.onnx");
        Assert.True(profile > 0 && profile < file, text);
        Assert.DoesNotContain("old", text, StringComparison.Ordinal);
        Assert.Contains("    measured_at: \"2026-11-25T18:00:00Z\"", lines);
        Assert.Contains("    - {batch_size: 1, p50_ms: 0.01234, p95_ms: 0.02, items_per_second: 81040}", lines);
    }

    [Fact]
    public void Apply_VariantWithoutProfile_GetsOneAfterItsOtherKeys()
    {
        var text = ManifestProfileWriter.Apply(Manifest, new Dictionary<string, VariantProfile> { ["b"] = s_earlyExitProfile }).Text;

        var tail = text.Split('\n').SkipWhile(l => l != "- name: b").ToList();
        Assert.Equal(["- name: b", "  kind: int8", "  file: b.onnx", "  profile:"], tail.Take(4));
        Assert.Contains("    - {threshold: 1, accuracy: 0.985185, mean_stages: 3, mean_latency_ms: 0.0185}", tail);
        Assert.Contains("    measured_at: \"old\"", text.Split('\n'));
    }

    [Fact]
    public void Apply_KeepsHeaderBlankLinesAndListStyle()
    {
        var text = ManifestProfileWriter.Apply(Manifest, new Dictionary<string, VariantProfile> { ["b"] = s_profile }).Text;

        var lines = text.Split('\n');
        Assert.Equal(["# Header line one.", "", "# Header line two, after a blank line.", "name: m"], lines.Take(4));
        Assert.Equal("", lines[Array.IndexOf(lines, "variants:") - 1]);
        Assert.Equal("", lines[Array.IndexOf(lines, "- name: b") - 1]);
        Assert.Equal("variants:", lines[Array.IndexOf(lines, "- name: a") - 1]);
    }

    [Fact]
    public void Apply_CommentsBelowTheHeader_AreCountedAsDropped()
    {
        var edit = ManifestProfileWriter.Apply(Manifest, new Dictionary<string, VariantProfile> { ["a"] = s_profile });

        Assert.Equal(1, edit.DroppedComments);
        Assert.DoesNotContain("trailing comment", edit.Text, StringComparison.Ordinal);
    }

    [Fact]
    public void Apply_IndentedListsAndCrLf_StayAsTheyWere()
    {
        var original = "name: m\r\ntask: t\r\nvariants:\r\n  - name: a\r\n    kind: fp32\r\n    file: a.onnx\r\n";

        var text = ManifestProfileWriter.Apply(original, new Dictionary<string, VariantProfile> { ["a"] = s_profile }).Text;

        Assert.StartsWith(original, text, StringComparison.Ordinal);
        Assert.Contains("\r\n    profile:\r\n      measured_at: ", text, StringComparison.Ordinal);
        Assert.DoesNotContain("\r\r", text, StringComparison.Ordinal);
        Assert.Equal(text.Split('\n').Length - 1, text.Split("\r\n").Length - 1);
    }

    [Fact]
    public void Apply_OneLineFlowCollections_KeepTheirSpacingAndAProfiledOneOpensUp()
    {
        var original = "name: m\ntask: t\ninputs:\n  - { name: \"x}[\", shape: [ -1,  4 ], note: 'it''s' }\nvariants:\n  - { name: a, kind: fp32, file: a.onnx }\n";

        var text = ManifestProfileWriter.Apply(original, new Dictionary<string, VariantProfile> { ["a"] = s_profile }).Text;

        Assert.Contains("  - { name: \"x}[\", shape: [ -1,  4 ], note: 'it''s' }\n", text, StringComparison.Ordinal);
        Assert.Contains("variants:\n  - name: a\n    kind: fp32\n    file: a.onnx\n    profile:\n", text, StringComparison.Ordinal);
    }

    [Fact]
    public void Apply_ProfileWithoutAccuracy_WritesNoAccuracyKey()
    {
        var text = ManifestProfileWriter.Apply(Manifest, new Dictionary<string, VariantProfile> { ["b"] = s_profile with { Accuracy = null } }).Text;

        Assert.DoesNotContain("accuracy", text.Split("- name: b")[1], StringComparison.Ordinal);
    }

    [Fact]
    public void Apply_UnknownVariant_FailsWithVerificationFailed()
    {
        var e = Assert.Throws<ZooToolException>(() => ManifestProfileWriter.Apply(Manifest, new Dictionary<string, VariantProfile> { ["c"] = s_profile }, "x/model.yaml"));

        Assert.Equal(ZooToolError.VerificationFailed, e.Error);
        Assert.Equal("x/model.yaml: has no variant named 'c' to write its profile into.", e.Message);
    }

    [Fact]
    public void Apply_NotAManifest_FailsWithVerificationFailed()
    {
        var e = Assert.Throws<ZooToolException>(() => ManifestProfileWriter.Apply("- just\n- a list\n", new Dictionary<string, VariantProfile> { ["a"] = s_profile }));

        Assert.Equal(ZooToolError.VerificationFailed, e.Error);
    }

    [Fact]
    public void Write_ReloadFails_RestoresTheOriginalByteForByte()
    {
        using var zoo = new ZooCopy(Profiles.DigitsFolder);
        var before = File.ReadAllBytes(zoo.Manifest("digits"));
        var listing = zoo.Listing();
        var writer = new ManifestProfileWriter(new RefusingGraphReader());

        var e = Assert.Throws<ZooToolException>(() => writer.Write(Path.Combine(zoo.Path, "digits"), new Dictionary<string, VariantProfile> { ["fp32"] = s_profile }));

        Assert.Equal(ZooToolError.VerificationFailed, e.Error);
        Assert.Contains("did not load again, so the original", e.Message, StringComparison.Ordinal);
        Assert.Contains("refused by the test.", e.Message, StringComparison.Ordinal);
        Assert.Equal(before, File.ReadAllBytes(zoo.Manifest("digits")));
        Assert.Equal(listing, zoo.Listing());
    }

    [Fact]
    public void Write_VariantNotInManifest_LeavesTheFileUntouched()
    {
        using var zoo = new ZooCopy(Profiles.DigitsFolder);
        var before = File.ReadAllBytes(zoo.Manifest("digits"));
        var listing = zoo.Listing();

        Assert.Throws<ZooToolException>(() => new ManifestProfileWriter(new OnnxGraphReader()).Write(Path.Combine(zoo.Path, "digits"), new Dictionary<string, VariantProfile> { ["int4"] = s_profile }));

        Assert.Equal(before, File.ReadAllBytes(zoo.Manifest("digits")));
        Assert.Equal(listing, zoo.Listing());
    }

    [Fact]
    public void Write_Succeeds_ReloadsTheProfileAndKeepsTheFileMode()
    {
        using var zoo = new ZooCopy(Profiles.DigitsFolder);
        var manifest = zoo.Manifest("digits");
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(manifest, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead);
        }

        var written = new ManifestProfileWriter(new OnnxGraphReader()).Write(Path.Combine(zoo.Path, "digits"), new Dictionary<string, VariantProfile> { ["early-exit"] = s_earlyExitProfile });

        var profile = written.Model.FindVariant("early-exit")!.Profile!;
        Assert.Equal(s_earlyExitProfile.Latency, profile.Latency);
        Assert.Equal(s_earlyExitProfile.Thresholds, profile.Thresholds);
        Assert.Equal(s_earlyExitProfile.Accuracy, profile.Accuracy);
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead, File.GetUnixFileMode(manifest));
        }

        Assert.DoesNotContain(zoo.Listing(), f => f.EndsWith(".tmp", StringComparison.Ordinal));
    }
}
