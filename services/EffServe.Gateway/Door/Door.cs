using System.Security.Claims;
using System.Text;
using System.Threading.RateLimiting;
using EffServe.Gateway.Forwarding;
using Grpc.Core;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace EffServe.Gateway.Door;

/// <summary>
/// The gateway's door: who is calling (API key or JWT bearer token → tenant), and whether that
/// tenant may make another request now (a token bucket per tenant). Off unless configured.
/// </summary>
public sealed class GatewayDoor : IDisposable
{
    public const string ApiKeyHeader = "effserve-api-key";
    public const string Anonymous = "anonymous";
    private const string TenantItem = "effserve.tenant";

    private readonly DoorOptions _options;
    private readonly JsonWebTokenHandler _tokens = new();
    private readonly TokenValidationParameters? _validation;
    private readonly PartitionedRateLimiter<string>? _limiter;

    public GatewayDoor(IOptions<GatewayOptions> options)
    {
        _options = options.Value.Door;
        if (_options.Jwt is { } jwt)
        {
            _validation = new TokenValidationParameters
            {
                ValidIssuer = jwt.Issuer,
                ValidateIssuer = jwt.Issuer.Length > 0,
                ValidAudience = jwt.Audience,
                ValidateAudience = jwt.Audience.Length > 0,
                IssuerSigningKey = new SymmetricSecurityKey(Encoding.UTF8.GetBytes(jwt.SigningKey)),
                ValidateIssuerSigningKey = true,
                ValidateLifetime = true,
                ClockSkew = TimeSpan.FromSeconds(30),
            };
        }

        if (_options.RequestsPerSecond > 0)
        {
            var period = TimeSpan.FromSeconds(Math.Max(0.001, 1.0 / _options.RequestsPerSecond));
            var perPeriod = Math.Max(1, (int)Math.Round(_options.RequestsPerSecond * period.TotalSeconds));
            _limiter = PartitionedRateLimiter.Create<string, string>(tenant => RateLimitPartition.GetTokenBucketLimiter(tenant, _ => new TokenBucketRateLimiterOptions
            {
                TokenLimit = _options.Burst,
                TokensPerPeriod = perPeriod,
                ReplenishmentPeriod = period,
                QueueLimit = 0,
                AutoReplenishment = true,
            }));
        }
    }

    public static string TenantOf(HttpContext context) => context.Items[TenantItem] as string ?? Anonymous;

    /// <summary>
    /// Identifies the caller and spends one request of its budget; false when the call was answered
    /// with UNAUTHENTICATED or RESOURCE_EXHAUSTED.
    /// </summary>
    public async ValueTask<bool> AdmitAsync(HttpContext context)
    {
        var tenant = Anonymous;
        if (_options.RequiresIdentity)
        {
            var (who, problem) = await IdentifyAsync(context).ConfigureAwait(false);
            if (who is null)
            {
                await GrpcResponses.WriteErrorAsync(context, StatusCode.Unauthenticated, problem!).ConfigureAwait(false);
                return false;
            }

            tenant = who;
            context.Items[TenantItem] = tenant; // anonymous callers cost no Items dictionary
        }

        if (_limiter is not null)
        {
            using var lease = _limiter.AttemptAcquire(tenant);
            if (!lease.IsAcquired)
            {
                var after = lease.TryGetMetadata(MetadataName.RetryAfter, out var retryAfter) ? retryAfter : TimeSpan.FromSeconds(1.0 / _options.RequestsPerSecond);
                await GrpcResponses.WriteErrorAsync(
                    context,
                    StatusCode.ResourceExhausted,
                    $"Tenant '{tenant}' is over its rate limit of {_options.RequestsPerSecond:G} requests/s (burst {_options.Burst}); retry in {Math.Max(1, after.TotalMilliseconds):F0} ms.",
                    after).ConfigureAwait(false);
                return false;
            }
        }

        return true;
    }

    private async ValueTask<(string? Tenant, string? Problem)> IdentifyAsync(HttpContext context)
    {
        var key = context.Request.Headers[ApiKeyHeader].ToString();
        if (key.Length > 0)
        {
            return _options.ApiKeys.TryGetValue(key, out var tenant)
                ? (tenant, null)
                : (null, $"The API key in '{ApiKeyHeader}' is not recognised.");
        }

        var authorization = context.Request.Headers.Authorization.ToString();
        if (authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            if (_validation is null)
            {
                return (null, "Bearer tokens are not accepted here; send an API key in the 'effserve-api-key' header.");
            }

            var result = await _tokens.ValidateTokenAsync(authorization["Bearer ".Length..].Trim(), _validation).ConfigureAwait(false);
            if (!result.IsValid)
            {
                return (null, $"The bearer token is not valid: {result.Exception?.Message.Split('\n')[0] ?? "validation failed"}");
            }

            var claim = result.ClaimsIdentity.FindFirst(_options.Jwt!.TenantClaim)?.Value ?? result.ClaimsIdentity.FindFirst(ClaimTypes.NameIdentifier)?.Value;
            return string.IsNullOrWhiteSpace(claim)
                ? (null, $"The bearer token has no '{_options.Jwt.TenantClaim}' claim naming the tenant.")
                : (claim, null);
        }

        return (null, $"This gateway needs credentials: an API key in the '{ApiKeyHeader}' header{(_validation is null ? "" : " or a bearer token in 'authorization'")}.");
    }

    public void Dispose() => _limiter?.Dispose();
}
