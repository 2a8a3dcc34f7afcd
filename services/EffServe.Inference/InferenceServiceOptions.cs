using Microsoft.Extensions.Options;

namespace EffServe.Inference;

/// <summary>Configuration section EffServe:Inference.</summary>
public sealed class InferenceServiceOptions
{
    public const string SectionName = "EffServe:Inference";

    /// <summary>Folder holding one sub-folder per model, each with a model.yaml. Relative paths start at the content root.</summary>
    public string ZooPath { get; set; } = "zoo";

    /// <summary>Models of the zoo to serve; empty serves all of them.</summary>
    public List<string> Models { get; set; } = [];

    /// <summary>
    /// Runs allowed at once across all models; requests beyond wait in the service's queue, where
    /// their wait is measured. 0 chooses cores ÷ intra-op threads (at least 1).
    /// </summary>
    public int MaxConcurrentRuns { get; set; }

    /// <summary>Largest gRPC message accepted or sent, in bytes.</summary>
    public int MaxMessageBytes { get; set; } = 64 * 1024 * 1024;

    /// <summary>Name reported by ServerMetadata.</summary>
    public string ServerName { get; set; } = "effserve";
}

/// <summary>Reports every bad setting at once, with its configuration path.</summary>
internal sealed class InferenceServiceOptionsValidator : IValidateOptions<InferenceServiceOptions>
{
    public ValidateOptionsResult Validate(string? name, InferenceServiceOptions options)
    {
        var failures = new List<string>();
        const string P = InferenceServiceOptions.SectionName;
        if (string.IsNullOrWhiteSpace(options.ZooPath))
        {
            failures.Add($"{P}:ZooPath is empty; set it to the folder holding the model zoo.");
        }

        if (options.MaxConcurrentRuns < 0)
        {
            failures.Add($"{P}:MaxConcurrentRuns is {options.MaxConcurrentRuns}; use 0 (automatic) or a positive number.");
        }

        if (options.MaxMessageBytes < 1024)
        {
            failures.Add($"{P}:MaxMessageBytes is {options.MaxMessageBytes}; it must be at least 1024.");
        }

        if (string.IsNullOrWhiteSpace(options.ServerName))
        {
            failures.Add($"{P}:ServerName is empty.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}

internal sealed class OnnxOptionsValidator : IValidateOptions<EffServe.Onnx.OnnxOptions>
{
    public ValidateOptionsResult Validate(string? name, EffServe.Onnx.OnnxOptions options)
    {
        var failures = new List<string>();
        const string P = EffServe.Onnx.OnnxOptions.SectionName;
        if (options.IntraOpThreads < 0)
        {
            failures.Add($"{P}:IntraOpThreads is {options.IntraOpThreads}; use 0 (one per core) or a positive number.");
        }

        if (options.InterOpThreads < 0)
        {
            failures.Add($"{P}:InterOpThreads is {options.InterOpThreads}; use 0 or a positive number.");
        }

        if (options.WarmupRuns < 0)
        {
            failures.Add($"{P}:WarmupRuns is {options.WarmupRuns}; it cannot be negative.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
