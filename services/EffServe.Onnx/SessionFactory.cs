using EffServe.Core.Zoo;
using Microsoft.ML.OnnxRuntime;

namespace EffServe.Onnx;

/// <summary>A variant's execution provider cannot run in this process.</summary>
public sealed class ProviderUnavailableException : Exception
{
    public ProviderUnavailableException()
    {
    }

    public ProviderUnavailableException(string message)
        : base(message)
    {
    }

    public ProviderUnavailableException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>Creates serving sessions: full graph optimisation, configured threads, the variant's provider.</summary>
internal static class SessionFactory
{
    public static InferenceSession Create(string path, ExecutionProvider provider, OnnxOptions options)
    {
        var sessionOptions = new SessionOptions
        {
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
            IntraOpNumThreads = options.IntraOpThreads,
            InterOpNumThreads = options.InterOpThreads,
            ExecutionMode = options.InterOpThreads > 1 ? ExecutionMode.ORT_PARALLEL : ExecutionMode.ORT_SEQUENTIAL,
            LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR,
        };
        try
        {
            AppendProvider(sessionOptions, provider);
            // GPU presence is known only once a session really starts on it: the compiled-in provider
            // list says what the package carries, not what this machine can run.
            return new InferenceSession(path, sessionOptions);
        }
        catch (OnnxRuntimeException e) when (provider != ExecutionProvider.Cpu)
        {
            throw new ProviderUnavailableException($"the {provider.ToManifestName()} execution provider does not start on this machine: {FirstLine(e.Message)}", e);
        }
        finally
        {
            sessionOptions.Dispose();
        }
    }

    private static void AppendProvider(SessionOptions options, ExecutionProvider provider)
    {
        try
        {
            switch (provider)
            {
                case ExecutionProvider.Cpu:
                    break;
                case ExecutionProvider.Cuda:
                    options.AppendExecutionProvider_CUDA(0);
                    break;
                case ExecutionProvider.TensorRt:
                    options.AppendExecutionProvider_Tensorrt(0);
                    options.AppendExecutionProvider_CUDA(0);
                    break;
                default:
                    throw new ArgumentOutOfRangeException(nameof(provider));
            }
        }
        catch (EntryPointNotFoundException e)
        {
            // The CPU package lacks the provider's entry points entirely.
            throw new ProviderUnavailableException($"this build carries the CPU ONNX Runtime package, which has no {provider.ToManifestName()} execution provider; build the GPU flavour (make build-gpu)", e);
        }
        catch (DllNotFoundException e)
        {
            throw new ProviderUnavailableException($"the {provider.ToManifestName()} execution provider's libraries are missing: {FirstLine(e.Message)}", e);
        }
        catch (OnnxRuntimeException e)
        {
            throw new ProviderUnavailableException($"the {provider.ToManifestName()} execution provider does not load on this machine: {FirstLine(e.Message)}", e);
        }
    }

    private static string FirstLine(string message)
    {
        var end = message.IndexOf('\n', StringComparison.Ordinal);
        return end < 0 ? message : message[..end];
    }
}
