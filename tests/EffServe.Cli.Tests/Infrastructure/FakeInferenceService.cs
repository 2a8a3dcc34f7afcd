using System.Collections.Concurrent;
using EffServe.Contracts.Inference;
using Google.Protobuf;
using Grpc.Core;

namespace EffServe.Cli.Tests.Infrastructure;

/// <summary>
/// An OIP service with canned answers: metadata for the models it knows, logits it was told to
/// return (one row per sample of the batch), and the requests it received.
/// </summary>
public sealed class FakeInferenceService : GRPCInferenceService.GRPCInferenceServiceBase
{
    public Dictionary<string, ModelMetadataResponse> Models { get; } = new(StringComparer.Ordinal);

    /// <summary>Entries RepositoryIndex returns; null makes it UNIMPLEMENTED.</summary>
    public List<RepositoryIndexResponse.Types.ModelIndex>? IndexEntries { get; init; }

    /// <summary>Logits of one sample; every sample of a batch gets the same row.</summary>
    public float[] Logits { get; set; } = [0f, 1f, 2f, 3f, 4f, 5f, 6f, 7f, 8f, 9f];

    /// <summary>Answer in the typed contents fields instead of raw_output_contents.</summary>
    public bool RespondTyped { get; set; }

    public Dictionary<string, InferParameter> ResponseParameters { get; } = new(StringComparer.Ordinal);

    public ConcurrentQueue<ModelInferRequest> Requests { get; } = new();

    public override Task<ModelMetadataResponse> ModelMetadata(ModelMetadataRequest request, ServerCallContext context) =>
        Models.TryGetValue(request.Name, out var metadata)
            ? Task.FromResult(metadata)
            : throw new RpcException(new Status(StatusCode.NotFound, $"model '{request.Name}' is not served here"));

    public override Task<ModelReadyResponse> ModelReady(ModelReadyRequest request, ServerCallContext context) =>
        Task.FromResult(new ModelReadyResponse { Ready = Models.ContainsKey(request.Name) });

    public override Task<RepositoryIndexResponse> RepositoryIndex(RepositoryIndexRequest request, ServerCallContext context)
    {
        if (IndexEntries is null)
        {
            throw new RpcException(new Status(StatusCode.Unimplemented, "RepositoryIndex is not implemented"));
        }

        var response = new RepositoryIndexResponse();
        response.Models.AddRange(IndexEntries);
        return Task.FromResult(response);
    }

    public override Task<ModelInferResponse> ModelInfer(ModelInferRequest request, ServerCallContext context)
    {
        Requests.Enqueue(request);
        if (!Models.TryGetValue(request.ModelName, out var metadata))
        {
            throw new RpcException(new Status(StatusCode.NotFound, $"model '{request.ModelName}' is not served here"));
        }

        var batch = request.Inputs.Count > 0 && request.Inputs[0].Shape.Count > 0 ? request.Inputs[0].Shape[0] : 1;
        var output = new ModelInferResponse.Types.InferOutputTensor { Name = metadata.Outputs[0].Name, Datatype = "FP32" };
        output.Shape.Add(batch);
        output.Shape.Add(Logits.Length);
        var values = Enumerable.Range(0, (int)batch).SelectMany(_ => Logits).ToArray();

        var response = new ModelInferResponse { ModelName = request.ModelName, ModelVersion = "1" };
        if (RespondTyped)
        {
            output.Contents = new InferTensorContents();
            output.Contents.Fp32Contents.AddRange(values);
        }
        else
        {
            var bytes = new byte[values.Length * sizeof(float)];
            Buffer.BlockCopy(values, 0, bytes, 0, bytes.Length);
            response.RawOutputContents.Add(ByteString.CopyFrom(bytes));
        }

        response.Outputs.Add(output);
        foreach (var (key, value) in ResponseParameters)
        {
            response.Parameters[key] = value;
        }

        return Task.FromResult(response);
    }
}
