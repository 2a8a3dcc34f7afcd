#!/usr/bin/env bash
# Runs EffServe on this machine: one inference service per model of the zoo on loopback ports,
# and the gateway in front of them on HOST:PORT, the one address clients use. Stays in the
# foreground; Ctrl-C or SIGTERM stops every process it started.
#
#   services/run-local.sh [--zoo DIR] [--host HOST] [--port PORT] [--configuration Release]
set -euo pipefail
cd "$(dirname "$0")/.."

zoo="$PWD/zoo"; host=127.0.0.1; port=8001; configuration=Release
while [ $# -gt 0 ]; do
  case "$1" in
    --zoo) zoo=$(cd "$2" && pwd); shift 2 ;;
    --host) host=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --configuration) configuration=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 1 ;;
  esac
done

inference=services/EffServe.Inference/bin/$configuration/net10.0
gateway=services/EffServe.Gateway/bin/$configuration/net10.0
pids=()
stop() {
  trap - EXIT INT TERM
  [ ${#pids[@]} -gt 0 ] && kill -TERM "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap stop EXIT
trap 'stop; exit 0' INT TERM

models=()
for manifest in "$zoo"/*/model.yaml; do
  [ -e "$manifest" ] && models+=("$(basename "$(dirname "$manifest")")")
done
if [ ${#models[@]} -eq 0 ]; then
  echo "No models in $zoo (a model folder holds a model.yaml)." >&2
  exit 1
fi

# Redis backs the shared response cache and the job service. An endpoint given in
# ConnectionStrings__redis is used as is; otherwise a private redis-server is started on a free
# loopback port when one is installed (nothing persisted), and without one EffServe runs with its
# in-process cache only (the job service then answers UNAVAILABLE).
redis_note=""
if [ -n "${ConnectionStrings__redis:-}" ]; then
  redis_note="Redis at $ConnectionStrings__redis (ConnectionStrings__redis)"
elif command -v redis-server >/dev/null; then
  redis_port=$((port + 379))
  while (exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null; do redis_port=$((redis_port + 1)); done
  redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --loglevel warning >/dev/null &
  pids+=($!)
  export ConnectionStrings__redis="127.0.0.1:$redis_port"
  redis_note="a private redis-server on 127.0.0.1:$redis_port (shared cache and jobs; nothing persisted)"
else
  redis_note="no Redis (redis-server is not installed): in-process cache only, the job service answers UNAVAILABLE"
fi
echo "EffServe: $redis_note"

# The response cache is opt-in per model: EFFSERVE_CACHE=1 turns it on for every model served here.
routes=()
for i in "${!models[@]}"; do
  model=${models[$i]}
  backend=$((port + 100 + i))
  cache_args=()
  [ "${EFFSERVE_CACHE:-0}" = 1 ] && cache_args=("--EffServe:Cache:Models:$model:Enabled=true")
  dotnet "$inference/EffServe.Inference.dll" --contentRoot "$PWD/$inference" \
    --urls "http://127.0.0.1:$backend" \
    --EffServe:Inference:ZooPath="$zoo" --EffServe:Inference:Models:0="$model" ${cache_args[@]+"${cache_args[@]}"} &
  pids+=($!)
  routes+=("--EffServe:Gateway:Models:$model:Destinations:0=http://127.0.0.1:$backend")
  echo "EffServe: model $model served by an inference service on 127.0.0.1:$backend"
done

dotnet "$gateway/EffServe.Gateway.dll" --contentRoot "$PWD/$gateway" --urls "http://$host:$port" "${routes[@]}" &
pids+=($!)
echo "EffServe: clients call $host:$port (OIP v2 gRPC over h2c, through the gateway); Ctrl-C stops it."

# Stop everything as soon as any one process ends.
wait -n
status=$?
echo "EffServe: a process ended (status $status); stopping the others." >&2
exit "$status"
