using System.Globalization;
using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;

namespace EffServe.Zoo.Profiling;

/// <summary>The machine and software a profile was measured with.</summary>
/// <param name="Cores">Logical processors this process may use.</param>
/// <param name="CpuModel">The processor's model name, from /proc/cpuinfo where there is one.</param>
/// <param name="OperatingSystem">The distribution's name (from /etc/os-release where there is one), else the OS description.</param>
/// <param name="Architecture">The process architecture (x64, arm64 ...).</param>
/// <param name="DotNet">The .NET runtime.</param>
/// <param name="OnnxRuntime">ONNX Runtime's native version.</param>
/// <param name="OnnxRuntimePackage">Which ONNX Runtime build this process carries: "CPU", or "GPU" when it has the CUDA provider compiled in.</param>
/// <param name="IntraOpThreads">Intra-op threads each run used; 0 when ONNX Runtime chose.</param>
public sealed record MachineDescription(
    int Cores,
    string CpuModel,
    string OperatingSystem,
    string Architecture,
    string DotNet,
    string OnnxRuntime,
    string OnnxRuntimePackage,
    int IntraOpThreads)
{
    public const string CpuInfoPath = "/proc/cpuinfo";
    public const string OsReleasePath = "/etc/os-release";

    /// <summary>One line for the manifest's <c>machine:</c> key.</summary>
    public string Summary => string.Create(
        CultureInfo.InvariantCulture,
        $"{Cores}-core {CpuModel} ({Architecture}), {OperatingSystem}, {DotNet}, ONNX Runtime {OnnxRuntime} ({OnnxRuntimePackage} package), {DescribeThreads(IntraOpThreads)}");

    /// <summary>Describes this machine and process.</summary>
    public static MachineDescription Detect(int intraOpThreads, string cpuInfoPath = CpuInfoPath, string osReleasePath = OsReleasePath)
    {
        var env = OrtEnv.Instance();
        var providers = env.GetAvailableProviders();
        return new MachineDescription(
            Environment.ProcessorCount,
            ReadCpuModel(cpuInfoPath) ?? "unknown CPU",
            ReadOsName(osReleasePath) ?? RuntimeInformation.OSDescription,
            RuntimeInformation.ProcessArchitecture.ToString().ToLowerInvariant(),
            RuntimeInformation.FrameworkDescription,
            env.GetVersionString(),
            providers.Contains("CUDAExecutionProvider", StringComparer.Ordinal) ? "GPU" : "CPU",
            intraOpThreads);
    }

    /// <summary>The first "model name" of a /proc/cpuinfo file, whitespace collapsed; null when absent.</summary>
    public static string? ReadCpuModel(string path)
    {
        foreach (var line in ReadLines(path))
        {
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            if (colon > 0 && line[..colon].Trim() is "model name" or "Model name" or "cpu model")
            {
                var value = string.Join(' ', line[(colon + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
                if (value.Length > 0)
                {
                    return value;
                }
            }
        }

        return null;
    }

    /// <summary>PRETTY_NAME (else NAME and VERSION_ID) of an os-release file; null when absent.</summary>
    public static string? ReadOsName(string path)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in ReadLines(path))
        {
            var equals = line.IndexOf('=', StringComparison.Ordinal);
            if (equals > 0 && !line.StartsWith('#'))
            {
                values[line[..equals].Trim()] = line[(equals + 1)..].Trim().Trim('"', '\'');
            }
        }

        if (values.TryGetValue("PRETTY_NAME", out var pretty) && pretty.Length > 0)
        {
            return pretty;
        }

        return values.TryGetValue("NAME", out var name) && name.Length > 0
            ? (values.TryGetValue("VERSION_ID", out var version) ? name + " " + version : name)
            : null;
    }

    private static string DescribeThreads(int threads) => threads switch
    {
        0 => "intra-op threads chosen by ONNX Runtime",
        1 => "1 intra-op thread",
        _ => string.Create(CultureInfo.InvariantCulture, $"{threads} intra-op threads"),
    };

    private static string[] ReadLines(string path)
    {
        try
        {
            return File.Exists(path) ? File.ReadAllLines(path) : [];
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }
}
