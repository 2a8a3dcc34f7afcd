using System.Security.Cryptography;

namespace EffServe.Core.Jobs;

/// <summary>
/// Job ids: the model's name, a dot, and 128 random bits in lowercase base32 (26 characters), so
/// that an id cannot be guessed and still says which model's replicas hold the job.
/// </summary>
public static class JobIds
{
    private const string Alphabet = "abcdefghijklmnopqrstuvwxyz234567";
    private const int RandomChars = 26;

    public static string New(string model)
    {
        ArgumentException.ThrowIfNullOrEmpty(model);
        Span<byte> random = stackalloc byte[16];
        RandomNumberGenerator.Fill(random);
        Span<char> text = stackalloc char[RandomChars];
        var bits = 0;
        var buffer = 0;
        var n = 0;
        foreach (var b in random)
        {
            buffer = (buffer << 8) | b;
            bits += 8;
            while (bits >= 5)
            {
                text[n++] = Alphabet[(buffer >> (bits - 5)) & 31];
                bits -= 5;
            }
        }

        text[n] = Alphabet[(buffer << (5 - bits)) & 31];
        return string.Concat(model, ".", text);
    }

    /// <summary>The model an id belongs to; false with a reason a person can act on when the id is not one of ours.</summary>
    public static bool TryParse(string? id, out string model, out string problem)
    {
        model = "";
        problem = "";
        if (string.IsNullOrEmpty(id))
        {
            problem = "The job id is empty; pass the job_id SubmitJob answered.";
            return false;
        }

        var dot = id.LastIndexOf('.');
        var random = dot < 0 ? "" : id[(dot + 1)..];
        if (dot <= 0 || random.Length != RandomChars || random.Any(c => !Alphabet.Contains(c, StringComparison.Ordinal)))
        {
            problem = $"'{Shorten(id)}' is not a job id; a job id is '<model>.<26 characters>' as SubmitJob answered it.";
            return false;
        }

        model = id[..dot];
        return true;
    }

    private static string Shorten(string id) => id.Length <= 80 ? id : string.Concat(id.AsSpan(0, 77), "...");
}
