using System.Globalization;
using EffServe.Contracts.Inference;
using EffServe.Contracts.Zoo;
using EffServe.Core.Accounting;
using EffServe.Observability.Tests.Support;
using EffServe.Testing;
using Grpc.Core;
using Microsoft.Extensions.DependencyInjection;

namespace EffServe.Observability.Tests;

/// <summary>Energy, cost and carbon per request, on the wire, through a real service.</summary>
[Collection(nameof(OneServerAtATime))]
public sealed class AccountingTests
{
    /// <summary>
    /// The conservation test: a run of mixed batches (batch sizes 1–32, fp32 and early exit at
    /// thresholds from 0 to 1) from eight callers at once over two run slots. The energy the
    /// responses report adds up to what the meter charged over the busy windows, within 1%; so do
    /// the model's totals in the zoo listing.
    /// </summary>
    [Fact]
    public async Task EnergyPerRequest_MixedBatches_AddsUpToTheMetersBusyTotal()
    {
        await using var service = await InferenceServer.StartAsync(RepoPaths.Zoo, new Dictionary<string, string?> { ["EffServe:Inference:MaxConcurrentRuns"] = "2" });
        var client = new GRPCInferenceService.GRPCInferenceServiceClient(service.Channel);
        var meter = service.Services.GetRequiredService<Accountant>().Cpu;
        var chargedBefore = meter.ChargedNanojoules;
        var runsBefore = meter.Runs;
        double?[] thresholds = [null, 0, 0.5, 0.9, 0.99, 1];
        int[] batches = [1, 2, 3, 5, 8, 13, 21, 32];

        var responses = await Task.WhenAll(Enumerable.Range(0, 8).Select(async caller =>
        {
            var mine = new List<ModelInferResponse>();
            for (var i = 0; i < 30; i++)
            {
                var n = (caller * 30) + i;
                var request = Digits.Request(n * 7, batches[n % batches.Length], thresholds[n % thresholds.Length]);
                mine.Add(await client.ModelInferAsync(request, cancellationToken: Digits.Ct));
            }

            return mine;
        }));

        var all = responses.SelectMany(r => r).ToList();
        Assert.Equal(240, all.Count);
        Assert.All(all, r => Digits.AssertCharged(r));
        var reported = all.Sum(r => Digits.Double(r, AccountingParameters.EnergyMj)) * 1e6;
        var metered = meter.ChargedNanojoules - chargedBefore;
        // Requests waiting together may share a run: never more runs than requests.
        Assert.InRange(meter.Runs - runsBefore, 1, 240);
        Assert.True(Math.Abs(reported - metered) <= 0.01 * metered, $"Responses report {reported:F0} nJ; the meter charged {metered} nJ over its busy windows.");

        var listing = await new ZooService.ZooServiceClient(service.Channel).ListModelsAsync(new ListModelsRequest { Name = Digits.Model }, cancellationToken: Digits.Ct);
        var totals = Assert.Single(listing.Models).Accounting;
        Assert.Equal(240UL, totals.Requests);
        Assert.Equal("modelled", totals.EnergySource);
        Assert.True(Math.Abs((totals.EnergyJoules * 1e9) - metered) <= 0.01 * metered);
        Assert.Equal(all.Sum(r => Digits.Double(r, AccountingParameters.CostUsd)), totals.CostUsd, 12);
        Assert.Equal(all.Sum(r => Digits.Double(r, AccountingParameters.CarbonMg)) / 1000, totals.CarbonGrams, 9);
        Assert.True(totals.CpuSeconds > 0);
        Assert.Equal(0, totals.GpuSeconds);
    }

    [Fact]
    public async Task EveryResponse_UnaryStreamTypedAndThroughTheGateway_CarriesPositiveEnergyCostAndCarbon()
    {
        await using var service = await InferenceServer.StartAsync(RepoPaths.Zoo);
        await using var gateway = await GatewayServer.StartAsync(new Dictionary<string, string?>
        {
            ["EffServe:Gateway:Models:digits:Destinations:0"] = service.Address.GetLeftPart(UriPartial.Authority),
            ["EffServe:Gateway:HealthCheckInterval"] = "00:00:00.200",
        });
        await gateway.WaitUntilServingAsync(Digits.Model);
        var direct = new GRPCInferenceService.GRPCInferenceServiceClient(service.Channel);
        var through = new GRPCInferenceService.GRPCInferenceServiceClient(gateway.Channel);

        var typed = Digits.Request(5);
        typed.Inputs[0].Contents = new InferTensorContents();
        typed.Inputs[0].Contents.Fp32Contents.AddRange(new float[64]);
        typed.RawInputContents.Clear();

        var responses = new List<ModelInferResponse>
        {
            await direct.ModelInferAsync(Digits.Request(0), cancellationToken: Digits.Ct),
            await direct.ModelInferAsync(Digits.Request(0, batch: 16, threshold: 0), cancellationToken: Digits.Ct),
            await direct.ModelInferAsync(typed, cancellationToken: Digits.Ct),
            await through.ModelInferAsync(Digits.Request(1, batch: 4, threshold: 1), cancellationToken: Digits.Ct),
        };
        using (var stream = direct.ModelStreamInfer(cancellationToken: Digits.Ct))
        {
            for (var i = 0; i < 3; i++)
            {
                await stream.RequestStream.WriteAsync(Digits.Request(i, batch: i + 1, threshold: i == 1 ? 0.9 : null), Digits.Ct);
            }

            await stream.RequestStream.CompleteAsync();
            await foreach (var answer in stream.ResponseStream.ReadAllAsync(Digits.Ct))
            {
                Assert.Equal("", answer.ErrorMessage);
                responses.Add(answer.InferResponse);
            }
        }

        Assert.Equal(7, responses.Count);
        Assert.All(responses, r => Digits.AssertCharged(r));
    }

    [Fact]
    public async Task NoRaplAndNoNvml_ModelledSourceWithoutError()
    {
        // The defaults: /sys/class/powercap and libnvidia-ml.so.1, which these machines lack.
        Assert.False(Directory.Exists("/sys/class/powercap/intel-rapl:0"), "This machine has RAPL; the test expects one without.");
        await using var service = await InferenceServer.StartAsync(RepoPaths.Zoo);
        var accountant = service.Services.GetRequiredService<Accountant>();

        var response = await new GRPCInferenceService.GRPCInferenceServiceClient(service.Channel).ModelInferAsync(Digits.Request(9), cancellationToken: Digits.Ct);

        Assert.Equal(EnergySource.Modelled, accountant.Cpu.Source);
        Assert.Equal(EnergySource.Modelled, accountant.Gpu.Source);
        Digits.AssertCharged(response, AccountingLabels.Modelled);
    }

    /// <summary>
    /// With a (fake) RAPL folder the service measures: responses say <c>measured</c>, and what they
    /// report adds up to the counter's growth over the busy windows (no baseline taken off).
    /// </summary>
    [Fact]
    public async Task FakeRaplFolder_ResponsesSayMeasuredAndAddUpToTheCounter()
    {
        var root = Path.Combine(Path.GetTempPath(), "effserve-rapl-" + Guid.NewGuid().ToString("N"));
        var zone = Path.Combine(root, "intel-rapl:0");
        Directory.CreateDirectory(zone);
        File.WriteAllText(Path.Combine(zone, "name"), "package-0\n");
        File.WriteAllText(Path.Combine(zone, "max_energy_range_uj"), "262143328850\n");
        File.WriteAllText(Path.Combine(zone, "energy_uj"), "000000001000\n");
        try
        {
            await using var service = await InferenceServer.StartAsync(RepoPaths.Zoo, new Dictionary<string, string?>
            {
                ["EffServe:Accounting:RaplPath"] = root,
                ["EffServe:Accounting:Cpu:CounterBaselineWatts"] = "0",
                ["EffServe:Inference:MaxConcurrentRuns"] = "1",
            });
            var client = new GRPCInferenceService.GRPCInferenceServiceClient(service.Channel);
            var meter = service.Services.GetRequiredService<Accountant>().Cpu;
            Assert.Equal(("rapl", EnergySource.Measured), (meter.Name, meter.Source));

            // A package that uses energy all the time: the counter moves while requests run. Each
            // value is written in place at a fixed width, in one write, as sysfs would show it.
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(Digits.Ct);
            var burner = Task.Run(async () =>
            {
                using var file = File.OpenHandle(Path.Combine(zone, "energy_uj"), FileMode.Open, FileAccess.Write);
                for (long uj = 1000; !stop.IsCancellationRequested; uj += 250)
                {
                    RandomAccess.Write(file, System.Text.Encoding.ASCII.GetBytes(uj.ToString("D12", CultureInfo.InvariantCulture) + "\n"), 0);
                    await Task.Delay(1, CancellationToken.None);
                }
            }, CancellationToken.None);

            var reported = 0.0;
            for (var i = 0; i < 40; i++)
            {
                var response = await client.ModelInferAsync(Digits.Request(i, batch: 1 + (i % 16), threshold: i % 2 == 0 ? 0.9 : null), cancellationToken: Digits.Ct);
                Assert.Equal(AccountingLabels.Measured, Digits.Text(response, AccountingParameters.EnergySource));
                Assert.True(Digits.Double(response, AccountingParameters.EnergyMj) >= 0);
                reported += Digits.Double(response, AccountingParameters.EnergyMj) * 1e6;
            }

            await stop.CancelAsync();
            await burner;
            var ledger = ((LedgerMeter)meter).Ledger;
            Assert.Equal(ledger.BusyNanojoules, meter.ChargedNanojoules);
            Assert.True(Math.Abs(reported - meter.ChargedNanojoules) <= Math.Max(1, 0.01 * meter.ChargedNanojoules), $"Responses report {reported:F0} nJ; the counter grew {meter.ChargedNanojoules} nJ over the busy windows.");
            var listing = await new ZooService.ZooServiceClient(service.Channel).ListModelsAsync(new ListModelsRequest { Name = Digits.Model }, cancellationToken: Digits.Ct);
            Assert.Equal("measured", Assert.Single(listing.Models).Accounting.EnergySource);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Theory]
    [InlineData("EffServe:Accounting:Carbon:Pue", "0.5")]
    [InlineData("EffServe:Accounting:EnergySource", "guess")]
    [InlineData("EffServe:Accounting:Prices:UsdPerCoreHour", "-1")]
    public async Task AccountingSettings_Invalid_ServiceRefusesToStart(string key, string value)
    {
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => InferenceServer.StartAsync(RepoPaths.Zoo, new Dictionary<string, string?> { [key] = value }));

        // Refused by the start-up check that reads every setting before the zoo loads, naming the setting.
        Assert.Contains("refused its settings", error.Message, StringComparison.Ordinal);
        Assert.Contains(key.Split(':')[^1], error.Message, StringComparison.Ordinal);
    }
}
