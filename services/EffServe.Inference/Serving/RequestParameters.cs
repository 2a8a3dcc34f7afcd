using System.Globalization;
using EffServe.Contracts.Inference;
using EffServe.Core.EarlyExit;
using EffServe.Core.Protocol;
using EffServe.Inference.Rpc;
using Google.Protobuf.Collections;
using Grpc.Core;

namespace EffServe.Inference.Serving;

public enum CacheMode
{
    Use,
    Bypass,
    Refresh,
}

/// <summary>
/// The request parameters EffServe reads (PROTOCOL.md): its own `effserve.*` hints and Triton's
/// `priority` and `timeout`. An unknown `effserve.*` key or a value of the wrong type or range is
/// refused with INVALID_ARGUMENT, so that a typo never passes silently.
/// </summary>
public sealed record RequestParameters(
    string? Variant,
    double? ExitThreshold,
    double? SloMs,
    double? MinAccuracy,
    double? MaxCostUsd,
    CacheMode Cache,
    long Priority,
    long? TimeoutUs)
{
    private const string VariantKey = ParameterNames.Variant;
    private const string ExitThresholdKey = ParameterNames.ExitThreshold;
    private const string SloKey = ParameterNames.SloMs;
    private const string MinAccuracyKey = ParameterNames.MinAccuracy;
    private const string MaxCostKey = ParameterNames.MaxCostUsd;
    private const string CacheKey = ParameterNames.Cache;
    private const string PriorityKey = ParameterNames.Priority;
    private const string TimeoutKey = ParameterNames.Timeout;

    private static readonly string[] s_known = [VariantKey, ExitThresholdKey, SloKey, MinAccuracyKey, MaxCostKey, CacheKey];

    public static RequestParameters Parse(MapField<string, InferParameter> parameters)
    {
        var problems = new List<string>();
        string? variant = null;
        double? threshold = null, slo = null, minAccuracy = null, maxCost = null;
        var cache = CacheMode.Use;
        long priority = 0;
        long? timeout = null;

        foreach (var (key, value) in parameters)
        {
            switch (key)
            {
                case VariantKey:
                    variant = String(key, value, problems);
                    break;
                case ExitThresholdKey:
                    threshold = Number(key, value, problems);
                    if (threshold is { } t && !ExitRule.IsValidThreshold(t))
                    {
                        problems.Add($"{key} is {Format(t)}; it must lie in [0, 1] (1 runs every stage, 0 exits at the first).");
                    }

                    break;
                case SloKey:
                    slo = Number(key, value, problems);
                    if (slo is <= 0)
                    {
                        problems.Add($"{key} is {Format(slo.Value)}; a latency budget must be positive.");
                    }

                    break;
                case MinAccuracyKey:
                    minAccuracy = Number(key, value, problems);
                    if (minAccuracy is < 0 or > 1)
                    {
                        problems.Add($"{key} is {Format(minAccuracy.Value)}; an accuracy floor lies in [0, 1].");
                    }

                    break;
                case MaxCostKey:
                    maxCost = Number(key, value, problems);
                    if (maxCost is < 0)
                    {
                        problems.Add($"{key} is {Format(maxCost.Value)}; a cost cap cannot be negative.");
                    }

                    break;
                case CacheKey:
                    var mode = String(key, value, problems);
                    cache = mode switch
                    {
                        null or "use" => CacheMode.Use,
                        "bypass" => CacheMode.Bypass,
                        "refresh" => CacheMode.Refresh,
                        _ => Invalid(problems, $"{key} is '{StatusDetails.Quote(mode)}'; use 'use', 'bypass' or 'refresh'."),
                    };
                    break;
                case PriorityKey:
                    priority = Integer(key, value, problems) ?? 0;
                    if (priority < 0)
                    {
                        problems.Add($"{key} is {priority}; 0 is the default priority, 1 the highest.");
                    }

                    break;
                case TimeoutKey:
                    timeout = Integer(key, value, problems);
                    if (timeout is < 0)
                    {
                        problems.Add($"{key} is {timeout}; a timeout in microseconds cannot be negative.");
                    }

                    break;
                default:
                    if (key.StartsWith(ParameterNames.Prefix, StringComparison.Ordinal))
                    {
                        problems.Add($"'{StatusDetails.Quote(key)}' is not an EffServe parameter (known: {string.Join(", ", s_known)}).");
                    }

                    break;
            }
        }

        if (problems.Count > 0)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, StatusDetails.Problems("Invalid request parameters:", problems)));
        }

        return new RequestParameters(variant, threshold, slo, minAccuracy, maxCost, cache, priority, timeout is 0 ? null : timeout);
    }

    private static CacheMode Invalid(List<string> problems, string message)
    {
        problems.Add(message);
        return CacheMode.Use;
    }

    private static string? String(string key, InferParameter value, List<string> problems)
    {
        if (value.ParameterChoiceCase == InferParameter.ParameterChoiceOneofCase.StringParam)
        {
            return value.StringParam;
        }

        problems.Add($"{key} must be a string_param; got {Describe(value)}.");
        return null;
    }

    private static double? Number(string key, InferParameter value, List<string> problems)
    {
        switch (value.ParameterChoiceCase)
        {
            case InferParameter.ParameterChoiceOneofCase.DoubleParam when double.IsFinite(value.DoubleParam):
                return value.DoubleParam;
            case InferParameter.ParameterChoiceOneofCase.Int64Param:
                return value.Int64Param;
            case InferParameter.ParameterChoiceOneofCase.Uint64Param:
                return value.Uint64Param;
            default:
                problems.Add($"{key} must be a finite double_param or an int64_param; got {Describe(value)}.");
                return null;
        }
    }

    private static long? Integer(string key, InferParameter value, List<string> problems)
    {
        switch (value.ParameterChoiceCase)
        {
            case InferParameter.ParameterChoiceOneofCase.Int64Param:
                return value.Int64Param;
            case InferParameter.ParameterChoiceOneofCase.Uint64Param when value.Uint64Param <= long.MaxValue:
                return (long)value.Uint64Param;
            default:
                problems.Add($"{key} must be an int64_param; got {Describe(value)}.");
                return null;
        }
    }

    private static string Describe(InferParameter value) => value.ParameterChoiceCase switch
    {
        InferParameter.ParameterChoiceOneofCase.None => "no value",
        InferParameter.ParameterChoiceOneofCase.BoolParam => "a bool_param",
        InferParameter.ParameterChoiceOneofCase.Int64Param => "an int64_param",
        InferParameter.ParameterChoiceOneofCase.StringParam => "a string_param",
        InferParameter.ParameterChoiceOneofCase.DoubleParam => $"the double_param {Format(value.DoubleParam)}",
        InferParameter.ParameterChoiceOneofCase.Uint64Param => "a uint64_param",
        _ => "an unknown kind of value",
    };

    private static string Format(double value) => value.ToString("G", CultureInfo.InvariantCulture);
}
