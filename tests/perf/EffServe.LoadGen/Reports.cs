using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using ScottPlot;
using SkiaSharp;

namespace EffServe.LoadGen;

/// <summary>A sweep's results as JSON, a markdown table and a PNG plot.</summary>
public static class Reports
{
    private static readonly JsonSerializerOptions s_json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    /// <summary>The JSON document: <paramref name="context"/> (command, revision, machine ...) and every measured figure, medians and raw repeats.</summary>
    public static string Json(SweepResult result, IReadOnlyDictionary<string, string> context) =>
        JsonSerializer.Serialize(new { Context = context, Result = result }, s_json);

    /// <summary>Markdown: goodput per arm, then every rate with every arm.</summary>
    public static string Markdown(SweepResult result)
    {
        var inv = CultureInfo.InvariantCulture;
        var text = new StringBuilder();
        var classes = result.Classes;
        text.AppendLine(inv, $"Model `{result.Model}`; classes: {string.Join(", ", classes.Select(DescribeClass))}.");
        text.AppendLine(inv, $"{result.Settings.Repeats} repeat(s) × {result.Settings.DurationSeconds:0.##} s per rate and arm; figures are medians of repeats.");
        text.AppendLine();
        text.AppendLine("| arm | goodput@99 req/s | goodput@90 req/s | accuracy at goodput@99 | accuracy-weighted goodput@99 | accuracy-weighted goodput@90 | goodput@99 per repeat | mean accuracy |");
        text.AppendLine("| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |");
        foreach (var arm in result.Arms)
        {
            text.AppendLine(inv, $"| {arm.Name} | {arm.Goodput99:0.#} | {arm.Goodput90:0.#} | {Percent(arm.AccuracyAtGoodput99)} | {arm.AccuracyWeightedGoodput99:0.#} | {arm.AccuracyWeightedGoodput90:0.#} | {string.Join(", ", arm.Goodput99PerRepeat.Select(g => g.ToString("0.#", inv)))} | {Percent(arm.MeanAccuracy)} |");
        }

        text.AppendLine();
        text.Append("| rate req/s | arm | attainment |");
        foreach (var c in classes)
        {
            text.Append(inv, $" {c.Name} ({c.SloMs:0.##} ms) |");
        }

        text.AppendLine(" p50 ms | p90 ms | p99 ms | accuracy | variants | not answered | server CPU ms/req | compute ms/answer | client CPU ms/req | sends > 1 ms late |");
        text.Append("| ---: | --- | ---: |");
        text.Append(string.Concat(classes.Select(_ => " ---: |")));
        text.AppendLine(" ---: | ---: | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: |");
        var rates = result.Arms[0].Points.Select(p => p.Rate).ToList();
        for (var r = 0; r < rates.Count; r++)
        {
            foreach (var arm in result.Arms)
            {
                var p = arm.Points[r];
                var perClass = p.ClassAttainment;
                text.Append(inv, $"| {p.Rate:0.#} | {arm.Name} | {Percent(p.Attainment)} |");
                foreach (var c in classes)
                {
                    text.Append(inv, $" {Percent(perClass[c.Name])} |");
                }

                var variants = string.Join(", ", p.VariantShares.OrderByDescending(v => v.Value).Select(v => string.Create(inv, $"{v.Key} {v.Value * 100:0.#}%")));
                var failures = p.Failures.Count == 0 ? "–" : string.Join(", ", p.Failures.Select(f => string.Create(inv, $"{f.Key} {(double)f.Value / p.Requests * 100:0.##}%")));
                text.AppendLine(inv, $" {p.P50Ms:0.00} | {p.P90Ms:0.00} | {p.P99Ms:0.00} | {Percent(p.Accuracy)} | {variants} | {failures} | {Number(p.ServerCpuMsPerRequest, "0.000")} | {Number(p.ComputeMsPerAnswer, "0.000")} | {p.ClientCpuMsPerRequest:0.000} | {p.LateOver1Ms * 100:0.##}% |");
            }
        }

        return text.ToString();
    }

    /// <summary>
    /// A PNG of two panels against offered rate, one line per arm: SLO attainment (with the 99%
    /// and 90% lines) and accuracy delivered. Legends sit below the data so no point hides under
    /// them; rates where the client sent more than <see cref="LateShare"/> of its requests over
    /// 1 ms late are ringed, since there the load offered was less than the rate says.
    /// </summary>
    /// <summary>The share of sends more than 1 ms late above which a rate is ringed as not offered in full.</summary>
    public const double LateShare = 0.01;

    public static byte[] Plot(SweepResult result, string title, int width = 1400, int height = 620)
    {
        var attainment = new Plot();
        var accuracy = new Plot();
        var markers = new[] { MarkerShape.FilledCircle, MarkerShape.FilledSquare, MarkerShape.FilledTriangleUp, MarkerShape.FilledDiamond, MarkerShape.OpenCircle, MarkerShape.OpenSquare };
        var patterns = new[] { LinePattern.Solid, LinePattern.Dashed, LinePattern.DenselyDashed, LinePattern.Dotted };
        var late = new List<(double Rate, double Attainment, double Accuracy)>();
        for (var i = 0; i < result.Arms.Count; i++)
        {
            var arm = result.Arms[i];
            late.AddRange(arm.Points.Where(p => p.LateOver1Ms > LateShare).Select(p => (p.Rate, Finite(p.Attainment * 100), Finite(p.Accuracy * 100))));
            var rates = arm.Points.Select(p => p.Rate).ToArray();
            var color = Palette(i);
            var a = attainment.Add.Scatter(rates, [.. arm.Points.Select(p => Finite(p.Attainment * 100))], color);
            var b = accuracy.Add.Scatter(rates, [.. arm.Points.Select(p => Finite(p.Accuracy * 100))], color);
            foreach (var line in new[] { a, b })
            {
                line.LegendText = arm.Name;
                line.MarkerShape = markers[i % markers.Length];
                line.MarkerSize = 7;
                line.LineWidth = 2;
                line.LinePattern = patterns[i % patterns.Length];
            }
        }

        // The target lines are named in the legend: a label on the axis would cover its ticks.
        var slo99 = attainment.Add.HorizontalLine(99, 1, Colors.Gray, LinePattern.Dotted);
        slo99.LegendText = "99% target";
        var slo90 = attainment.Add.HorizontalLine(90, 1, Colors.DarkGray, LinePattern.Dashed);
        slo90.LegendText = "90% target";
        if (late.Count > 0)
        {
            foreach (var (panel, values) in new[] { (attainment, late.Select(l => l.Attainment)), (accuracy, late.Select(l => l.Accuracy)) })
            {
                var ring = panel.Add.ScatterPoints(late.Select(l => l.Rate).ToArray(), values.ToArray(), Colors.Red);
                ring.MarkerShape = MarkerShape.OpenCircle;
                ring.MarkerSize = 16;
                ring.LegendText = string.Create(CultureInfo.InvariantCulture, $"client sent late (> {LateShare:P0} of sends over 1 ms)");
            }
        }

        attainment.Title($"SLO attainment — {title}");
        attainment.XLabel("offered rate (requests/s, Poisson)");
        attainment.YLabel("% of requests within their SLO");
        attainment.Axes.SetLimitsY(0, 104);
        attainment.ShowLegend(Edge.Bottom);
        accuracy.Title($"Accuracy delivered — {title}");
        accuracy.XLabel("offered rate (requests/s, Poisson)");
        accuracy.YLabel("% of answers with the true class on top");
        accuracy.Axes.Margins(0.05, 0.15); // room above and below every point
        accuracy.ShowLegend(Edge.Bottom);

        // Each panel on its own surface (a plot clears the canvas it renders on), then side by side.
        var half = width / 2;
        using var surface = SKSurface.Create(new SKImageInfo(width, height));
        surface.Canvas.Clear(SKColors.White);
        foreach (var (panel, left, panelWidth) in new[] { (attainment, 0, half), (accuracy, half, width - half) })
        {
            using var panelSurface = SKSurface.Create(new SKImageInfo(panelWidth, height));
            panel.Render(panelSurface.Canvas, panelWidth, height);
            using var panelImage = panelSurface.Snapshot();
            surface.Canvas.DrawImage(panelImage, left, 0);
        }

        using var image = surface.Snapshot();
        using var png = image.Encode(SKEncodedImageFormat.Png, 100);
        return png.ToArray();
    }

    /// <summary>Writes results.json, results.md and <paramref name="plotName"/> into <paramref name="folder"/>; returns their paths.</summary>
    public static IReadOnlyList<string> WriteAll(string folder, SweepResult result, IReadOnlyDictionary<string, string> context, string title, string? preamble = null, string plotName = "plot.png")
    {
        Directory.CreateDirectory(folder);
        var json = Path.Combine(folder, "results.json");
        var markdown = Path.Combine(folder, "results.md");
        var plot = Path.Combine(folder, plotName);
        File.WriteAllText(json, Json(result, context));
        File.WriteAllText(markdown, (preamble ?? "") + Markdown(result));
        File.WriteAllBytes(plot, Plot(result, title));
        return [json, markdown, plot];
    }

    public static string DescribeClass(SloClass c)
    {
        var inv = CultureInfo.InvariantCulture;
        var text = string.Create(inv, $"{c.Name} {c.SloMs:0.##} ms ×{c.Weight:0.##}");
        if (c.MinAccuracy is { } floor)
        {
            text += string.Create(inv, $", accuracy ≥ {floor:0.###}");
        }

        if (c.Priority is { } priority)
        {
            text += string.Create(inv, $", priority {priority}");
        }

        return text;
    }

    private static string Percent(double value) => double.IsFinite(value) ? (value * 100).ToString("0.00", CultureInfo.InvariantCulture) + "%" : "–";

    private static string Number(double? value, string format) => value is { } v && double.IsFinite(v) ? v.ToString(format, CultureInfo.InvariantCulture) : "–";

    private static double Finite(double value) => double.IsFinite(value) ? value : double.NaN;

    private static Color Palette(int index) => new ScottPlot.Palettes.Category10().GetColor(index);
}
