using EffServe.Contracts.Inference;
using EffServe.Gateway.Routing;
using EffServe.Gateway.Tests.Support;
using Google.Protobuf;

namespace EffServe.Gateway.Tests.Attacks;

/// <summary>
/// Door bypass by path: every guarded method, written with a trailing '/', a dot segment, another
/// case, a doubled slash, an escaped slash or a query, sent without credentials. None is ever
/// answered OK: the exact path is refused UNAUTHENTICATED, any other UNIMPLEMENTED (or reset by Kestrel).
/// </summary>
[Collection(nameof(UnderAttack))]
public sealed class DoorPathTests(AttackReplicas replicas)
{
    private static IEnumerable<string> Variants(string path)
    {
        var slash = path.LastIndexOf('/');
        var (service, method) = (path[..slash], path[(slash + 1)..]);
        yield return path;
        yield return path + "/";
        yield return path + "/.";
        yield return path + "/./";
        yield return path + "?x=1";
        yield return path.ToUpperInvariant();
        yield return path.ToLowerInvariant();
        yield return "/" + path;
        yield return service + "//" + method;
        yield return service + "/./" + method;
        yield return service + "%2F" + method;
        yield return service + "/" + method.ToLowerInvariant();
        yield return "/x/.." + path;
        yield return path + "%00";
    }

    [Fact]
    public async Task GuardedMethodsUnderOtherSpellings_NeverAnsweredWithoutCredentials()
    {
        var answers = new List<(string Path, string Outcome)>();
        await AttackHarness.RunAsync(
            replicas,
            async attack =>
            {
                foreach (var method in GrpcMethods.All.Where(m => m.Guarded))
                {
                    var body = method.Route == MethodRoute.Gateway ? RawGrpc.Frame([]) : RawGrpc.Frame(Digits.Request(0).ToByteArray());
                    foreach (var path in Variants(method.Path))
                    {
                        await using var raw = await RawH2.ConnectAsync(attack.Address);
                        answers.Add((path, await raw.CallAsync(1, path, body)));
                    }
                }
            },
            door: true);

        AttackContext.Report(string.Join(Environment.NewLine, answers.GroupBy(a => a.Outcome).Select(g => $"{g.Key}: {g.Count()} paths, e.g. {g.First().Path}")));
        Assert.All(answers, a => Assert.True(a.Outcome is "16" or "12" || a.Outcome.StartsWith("RST", StringComparison.Ordinal), $"{a.Path} was answered {a.Outcome} without credentials"));
        Assert.All(answers.Where(a => GrpcMethods.TryGet(a.Path, out _)), a => Assert.Equal("16", a.Outcome));
    }
}
