using EffServe.Core.Zoo;
using EffServe.Onnx;

namespace EffServe.Zoo.Manifest;

/// <summary>A model folder of a zoo on disk, loaded and checked as the server would load it.</summary>
public sealed class ZooModel
{
    private ZooModel(string folder, ModelDefinition definition)
    {
        Folder = folder;
        Definition = definition;
    }

    public string Folder { get; }

    public string ManifestPath => Path.Combine(Folder, ZooLoader.ManifestFileName);

    public ModelDefinition Definition { get; }

    /// <summary>Loads model <paramref name="name"/> of the zoo at <paramref name="zoo"/>.</summary>
    /// <exception cref="ZooToolException">The zoo or the model does not exist (NotFound).</exception>
    /// <exception cref="ZooValidationException">The model's manifest or files have problems.</exception>
    public static ZooModel Open(string zoo, string name)
    {
        var root = Path.GetFullPath(zoo);
        if (!Directory.Exists(root))
        {
            throw new ZooToolException(ZooToolError.NotFound, $"the zoo folder {root} does not exist.");
        }

        var folder = Path.Combine(root, name);
        if (!File.Exists(Path.Combine(folder, ZooLoader.ManifestFileName)))
        {
            var models = Directory.EnumerateDirectories(root)
                .Where(d => File.Exists(Path.Combine(d, ZooLoader.ManifestFileName)))
                .Select(Path.GetFileName)
                .Order(StringComparer.Ordinal)
                .ToList();
            throw new ZooToolException(ZooToolError.NotFound, $"the zoo {root} has no model '{name}' (models: {(models.Count == 0 ? "none" : string.Join(", ", models))}).");
        }

        return new ZooModel(folder, Load(folder));
    }

    /// <summary>Loads a model folder with the server's loader and graph reader.</summary>
    public static ModelDefinition Load(string folder) => new ZooLoader(new OnnxGraphReader()).LoadModel(folder);

    /// <summary>A single-file variant to convert from.</summary>
    /// <exception cref="ZooToolException">No such variant (UnknownName), or it is an early-exit chain (InvalidArgument).</exception>
    public VariantDefinition SourceVariant(string name)
    {
        var variant = Definition.FindVariant(name)
            ?? throw new ZooToolException(ZooToolError.UnknownName, $"model '{Definition.Name}' has no variant '{name}' (variants: {string.Join(", ", Definition.Variants.Select(v => v.Name))}).");
        if (variant.Kind == VariantKind.EarlyExit)
        {
            throw new ZooToolException(ZooToolError.InvalidArgument, $"variant '{name}' of '{Definition.Name}' is an early-exit chain; convert from a single-file variant (such as fp32).");
        }

        return variant;
    }

    /// <summary>Checks that a new variant may take <paramref name="name"/>: a valid identifier, free unless replacing.</summary>
    public void CheckNewVariant(string name, bool replace)
    {
        ZooNames.Check(name, "variant name");
        if (!replace && Definition.FindVariant(name) is not null)
        {
            throw new ZooToolException(ZooToolError.AlreadyExists, $"model '{Definition.Name}' already has a variant '{name}'; choose another --name or pass --force to replace it.");
        }

        if (!replace && Directory.Exists(Path.Combine(Folder, name)))
        {
            throw new ZooToolException(ZooToolError.AlreadyExists, $"{Path.Combine(Folder, name)} exists already; choose another --name or pass --force to replace it.");
        }
    }
}

/// <summary>The rule names of models and variants follow (the zoo loader's identifier rule).</summary>
public static class ZooNames
{
    public static bool IsValid(string name) =>
        name.Length is > 0 and <= 128 && !name.StartsWith('.') && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.');

    public static void Check(string name, string what)
    {
        if (!IsValid(name))
        {
            throw new ZooToolException(ZooToolError.InvalidArgument, $"'{name}' is not a valid {what}: use letters, digits, '-', '_' and '.', not starting with '.'.");
        }
    }

    /// <summary>A valid name made from a file name: invalid characters become '-'.</summary>
    public static string FromFileName(string path)
    {
        var stem = Path.GetFileNameWithoutExtension(path);
        var cleaned = new string(stem.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '-').ToArray()).TrimStart('.');
        return cleaned.Length == 0 ? "model" : cleaned[..Math.Min(cleaned.Length, 128)];
    }
}
