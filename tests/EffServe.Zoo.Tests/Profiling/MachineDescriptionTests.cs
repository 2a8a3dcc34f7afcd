using EffServe.Zoo.Profiling;
using EffServe.Zoo.Tests.Support;

namespace EffServe.Zoo.Tests.Profiling;

public sealed class MachineDescriptionTests : IDisposable
{
    private readonly TempFolder _folder = new();

    public void Dispose() => _folder.Dispose();

    [Fact]
    public void ReadCpuModel_CpuInfo_TakesTheFirstModelNameWithSpacesCollapsed()
    {
        var path = Write("cpuinfo", "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC   9R14 96-Core Processor\n\nprocessor\t: 1\nmodel name\t: other\n");

        Assert.Equal("AMD EPYC 9R14 96-Core Processor", MachineDescription.ReadCpuModel(path));
    }

    [Fact]
    public void ReadCpuModel_NoFileOrNoModelName_IsNull()
    {
        Assert.Null(MachineDescription.ReadCpuModel(_folder.Combine("missing")));
        Assert.Null(MachineDescription.ReadCpuModel(Write("cpuinfo", "processor\t: 0\nBogoMIPS\t: 50.00\n")));
    }

    [Fact]
    public void ReadOsName_PrettyNameFirst_ElseNameAndVersion()
    {
        Assert.Equal("Debian GNU/Linux 12 (bookworm)", MachineDescription.ReadOsName(Write("a", "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_ID=\"12\"\n")));
        Assert.Equal("Alpine 3.20", MachineDescription.ReadOsName(Write("b", "NAME=Alpine\nVERSION_ID=3.20\n")));
        Assert.Null(MachineDescription.ReadOsName(_folder.Combine("missing")));
    }

    [Fact]
    public void Detect_ThisMachine_NamesCoresRuntimeVersionsAndThreads()
    {
        var machine = MachineDescription.Detect(2);

        Assert.Equal(Environment.ProcessorCount, machine.Cores);
        Assert.Matches(@"^\d+\.\d+\.\d+", machine.OnnxRuntime);
        Assert.StartsWith(".NET ", machine.DotNet, StringComparison.Ordinal);
        Assert.Contains($"{machine.Cores}-core ", machine.Summary, StringComparison.Ordinal);
        Assert.Contains("ONNX Runtime " + machine.OnnxRuntime, machine.Summary, StringComparison.Ordinal);
        Assert.EndsWith("2 intra-op threads", machine.Summary, StringComparison.Ordinal);
    }

    private string Write(string name, string text)
    {
        var path = _folder.Combine(name);
        File.WriteAllText(path, text);
        return path;
    }
}
