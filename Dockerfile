# syntax=docker/dockerfile:1
# CPU images of EffServe, from the repository root:
#   docker build --target gateway   -t effserve/gateway:0.1.0 .
#   docker build --target inference -t effserve/inference:0.1.0 .
# The build stage runs k8s/images/publish.sh, the same script as `make publish`. The runtime
# stages are chiseled (no shell, no package manager), run as the non-root user 1654 and need
# nothing writable but /tmp, so they suit readOnlyRootFilesystem. The inference image bakes the
# demo zoo into /app/zoo; mount another zoo over it or elsewhere (docs/kubernetes.md).
ARG SDK_IMAGE=mcr.microsoft.com/dotnet/sdk:10.0
ARG RUNTIME_IMAGE=mcr.microsoft.com/dotnet/runtime-deps:10.0-noble-chiseled

FROM ${SDK_IMAGE} AS build
WORKDIR /src
COPY global.json Directory.Build.props Directory.Packages.props BannedSymbols.txt .editorconfig ./
COPY protos/ protos/
COPY services/ services/
COPY k8s/images/publish.sh k8s/images/publish.sh
RUN bash k8s/images/publish.sh gateway /out/gateway \
 && bash k8s/images/publish.sh inference /out/inference

FROM ${RUNTIME_IMAGE} AS gateway
WORKDIR /app
COPY --from=build --chown=1654:1654 /out/gateway/ /app/
USER 1654:1654
ENV DOTNET_ENVIRONMENT=Production ASPNETCORE_ENVIRONMENT=Production
EXPOSE 8001 9464
ENTRYPOINT ["/app/EffServe.Gateway"]

FROM ${RUNTIME_IMAGE} AS inference
WORKDIR /app
COPY --from=build --chown=1654:1654 /out/inference/ /app/
COPY --chown=1654:1654 zoo/ /app/zoo/
USER 1654:1654
ENV DOTNET_ENVIRONMENT=Production ASPNETCORE_ENVIRONMENT=Production
EXPOSE 8001 9464
ENTRYPOINT ["/app/EffServe.Inference"]
