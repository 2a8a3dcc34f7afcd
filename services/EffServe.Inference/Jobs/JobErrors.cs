using System.Text;
using EffServe.Contracts.Jobs;
using Grpc.Core;

namespace EffServe.Inference.Jobs;

/// <summary>An item's error as stored ("CODE\tmessage") and as answered.</summary>
internal static class JobErrors
{
    /// <summary>A status code as the protocol names it: INVALID_ARGUMENT, UNAVAILABLE ...</summary>
    public static string CodeName(StatusCode code)
    {
        var name = code.ToString();
        var text = new StringBuilder(name.Length + 4);
        for (var i = 0; i < name.Length; i++)
        {
            if (i > 0 && char.IsUpper(name[i]))
            {
                text.Append('_');
            }

            text.Append(char.ToUpperInvariant(name[i]));
        }

        return text.ToString();
    }

    public static string Format(string code, string message) => $"{code}\t{message}";

    public static JobItemError Parse(string stored, int attempts)
    {
        var tab = stored.IndexOf('\t', StringComparison.Ordinal);
        return tab < 0
            ? new JobItemError { Code = "UNAVAILABLE", Message = stored.Length > 0 ? stored : "The item's worker stopped during every attempt.", Attempts = (uint)attempts }
            : new JobItemError { Code = stored[..tab], Message = stored[(tab + 1)..], Attempts = (uint)attempts };
    }
}
