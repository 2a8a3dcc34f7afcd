using System.Runtime.InteropServices;

namespace EffServe.Core.Accounting;

/// <summary>
/// GPU energy from NVIDIA's management library: <c>nvmlDeviceGetTotalEnergyConsumption</c>, the
/// millijoules the GPU has used since the driver loaded (Volta and later). The driver refreshes the
/// counter only every few tens of milliseconds, so a run shorter than that may see no change and the
/// next one the whole step: per-request figures are lumpy, their sums over many runs are right.
/// The library is looked up at run time; without it (no NVIDIA driver) the counter is simply absent.
/// </summary>
public sealed class NvmlCounter : IEnergyCounter
{
    private const int Success = 0;

    private readonly IntPtr _library;
    private readonly IntPtr _device;
    private readonly GetEnergy _getEnergy;
    private readonly Shutdown _shutdown;
    private readonly object _lock = new();
    private readonly ulong _first;
    private ulong _last;

    private NvmlCounter(IntPtr library, IntPtr device, GetEnergy getEnergy, Shutdown shutdown, ulong first, int index)
    {
        _library = library;
        _device = device;
        _getEnergy = getEnergy;
        _shutdown = shutdown;
        _first = first;
        _last = first;
        Description = $"GPU {index}";
    }

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    private delegate int Init();

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    private delegate int Shutdown();

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    private delegate int HandleByIndex(uint index, out IntPtr device);

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    private delegate int GetEnergy(IntPtr device, out ulong millijoules);

    public string Name => "nvml";

    public Device Device => Device.Gpu;

    public string Description { get; }

    /// <summary>Opens GPU <paramref name="index"/>'s energy counter; null, with the reason, when the library, the GPU or the counter is missing.</summary>
    public static NvmlCounter? TryOpen(string library, int index, out string reason)
    {
        if (!NativeLibrary.TryLoad(library, out var handle))
        {
            reason = $"{library} is not installed (no NVIDIA driver)";
            return null;
        }

        try
        {
            if (!TryExport<Init>(handle, "nvmlInit_v2", out var init)
                || !TryExport<Shutdown>(handle, "nvmlShutdown", out var shutdown)
                || !TryExport<HandleByIndex>(handle, "nvmlDeviceGetHandleByIndex_v2", out var byIndex)
                || !TryExport<GetEnergy>(handle, "nvmlDeviceGetTotalEnergyConsumption", out var getEnergy))
            {
                reason = $"{library} lacks the NVML functions EffServe needs";
                NativeLibrary.Free(handle);
                return null;
            }

            var status = init();
            if (status != Success)
            {
                reason = $"nvmlInit_v2 failed with NVML status {status}";
                NativeLibrary.Free(handle);
                return null;
            }

            if ((status = byIndex((uint)index, out var device)) != Success || (status = getEnergy(device, out var first)) != Success)
            {
                // 3 (NOT_SUPPORTED): a GPU older than Volta has no energy counter.
                reason = $"GPU {index} has no readable energy counter (NVML status {status})";
                shutdown();
                NativeLibrary.Free(handle);
                return null;
            }

            reason = "";
            return new NvmlCounter(handle, device, getEnergy, shutdown, first, index);
        }
        catch (Exception e) when (e is MarshalDirectiveException or EntryPointNotFoundException or DllNotFoundException)
        {
            reason = $"{library} could not be used: {e.Message}";
            NativeLibrary.Free(handle);
            return null;
        }
    }

    public long ReadNanojoules()
    {
        lock (_lock)
        {
            // A failed read (the GPU fell off the bus) keeps the last value: energy stops, nothing goes backwards.
            if (_getEnergy(_device, out var now) == Success && now >= _last)
            {
                _last = now;
            }

            return checked((long)(_last - _first) * 1_000_000);
        }
    }

    public void Dispose()
    {
        _shutdown();
        NativeLibrary.Free(_library);
    }

    private static bool TryExport<T>(IntPtr library, string name, out T function)
        where T : Delegate
    {
        if (NativeLibrary.TryGetExport(library, name, out var address))
        {
            function = Marshal.GetDelegateForFunctionPointer<T>(address);
            return true;
        }

        function = null!;
        return false;
    }
}
