#!/usr/bin/env bash
# Publishes one EffServe service the way its container image ships it. `make publish` and the
# Dockerfiles both run this script, so what is tested here is what the images contain.
#
#   k8s/images/publish.sh gateway|inference|inference-gpu OUTPUT_DIR
#
# Self-contained for linux-x64: the images need no .NET runtime, only the native libraries of
# runtime-deps (the GPU image starts from NVIDIA's CUDA image, which has no .NET). The GPU flavour
# swaps in ONNX Runtime's GPU package (-p:EffServeGpu=true); one process cannot load both.
set -euo pipefail
cd "$(dirname "$0")/../.."
what=${1:?which service: gateway, inference or inference-gpu}
out=${2:?output folder}
configuration=${CONFIGURATION:-Release}
common=(-c "$configuration" -r linux-x64 --self-contained true -p:DebugType=none -p:GenerateDocumentationFile=false -v quiet -nologo)
case "$what" in
  gateway)       dotnet publish services/EffServe.Gateway "${common[@]}" -o "$out" ;;
  inference)     dotnet publish services/EffServe.Inference "${common[@]}" -o "$out" ;;
  inference-gpu) dotnet publish services/EffServe.Inference "${common[@]}" -p:EffServeGpu=true -o "$out" ;;
  *) echo "publish.sh: unknown service '$what'; use gateway, inference or inference-gpu." >&2; exit 2 ;;
esac
