#!/usr/bin/env bash
# Runs EffServe on this machine: one inference service per model of the zoo on loopback ports,
# and the gateway in front of them on HOST:PORT, the one address clients use. Each process writes
# its log to artifacts/run/logs/. Prints one line when every model is serving (or which process
# failed to come up, and where its log is), then stays in the foreground; Ctrl-C or SIGTERM stops
# every process it started.
#
#   services/run-local.sh [--zoo DIR] [--host HOST] [--port PORT] [--configuration Release]
#                         [--metrics-url http://HOST:PORT] [--check]
#
# --check only checks the zoo and the ports, then exits (make run does it before building).
# --metrics-url (or EffServe__Telemetry__MetricsUrl) gives each process a Prometheus /metrics of
# its own: the gateway on the port given, the services on the ports after it (port 0: free ports).
set -euo pipefail
cd "$(dirname "$0")/.."

zoo="$PWD/zoo"; host=127.0.0.1; port=8001; configuration=Release; check_only=0
metrics_url=${EffServe__Telemetry__MetricsUrl:-}
while [ $# -gt 0 ]; do
  case "$1" in
    --zoo) zoo=$2; shift 2 ;;
    --host) host=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --configuration) configuration=$2; shift 2 ;;
    --metrics-url) metrics_url=$2; shift 2 ;;
    --check) check_only=1; shift ;;
    *) echo "unknown argument: $1" >&2; exit 1 ;;
  esac
done

fail() { echo "EffServe: $*" >&2; exit 1; }

if [ ! -d "$zoo" ]; then
  fail "the zoo folder $zoo does not exist; give another with ZOO=DIR (make run ZOO=/srv/zoo) or --zoo DIR."
fi
zoo=$(cd "$zoo" && pwd)
models=()
for manifest in "$zoo"/*/model.yaml; do
  [ -e "$manifest" ] && models+=("$(basename "$(dirname "$manifest")")")
done
if [ ${#models[@]} -eq 0 ]; then
  fail "no models in $zoo (a zoo holds one folder per model, each with a model.yaml); give another with ZOO=DIR."
fi
case "$port" in
  ''|*[!0-9]*) fail "the port '$port' is not a number; choose one with make run PORT=N." ;;
esac

# Clients call the gateway on loopback when it listens on every interface.
client_host=$host
case "$host" in 0.0.0.0|'*'|'+'|'[::]') client_host=127.0.0.1 ;; esac

in_use() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
if in_use "$client_host" "$port"; then
  fail "port $port is already in use, so the gateway cannot listen there; choose another with make run PORT=N (or EFFSERVE_PORT=N)."
fi
for i in "${!models[@]}"; do
  backend=$((port + 100 + i))
  if in_use 127.0.0.1 "$backend"; then
    fail "port $backend is already in use, so the inference service for model ${models[$i]} cannot listen there (services take PORT+100 and up); choose another PORT with make run PORT=N."
  fi
done

# The metrics ports: the gateway's as given, then one per model after it (port 0 stays 0: free ports).
metrics_host=""; metrics_port=""
if [ -n "$metrics_url" ]; then
  if [[ "$metrics_url" =~ ^http://([^/]+):([0-9]+)/?$ ]]; then
    metrics_host=${BASH_REMATCH[1]}; metrics_port=${BASH_REMATCH[2]}
  else
    fail "the metrics address '$metrics_url' is not http://HOST:PORT."
  fi
  if [ "$metrics_port" != 0 ]; then
    probe_host=$metrics_host
    case "$probe_host" in 0.0.0.0|'*'|'+'|'[::]'|localhost) probe_host=127.0.0.1 ;; esac
    for i in $(seq 0 "${#models[@]}"); do
      if in_use "$probe_host" $((metrics_port + i)); then
        fail "metrics port $((metrics_port + i)) is already in use (the gateway takes the port of EffServe:Telemetry:MetricsUrl, each service the next one); choose another metrics port, or 0 for free ones."
      fi
    done
  fi
fi
metrics_arg() { # $1: offset from the given metrics port
  [ -n "$metrics_port" ] || return 0
  local p=0
  [ "$metrics_port" = 0 ] || p=$((metrics_port + $1))
  echo "--EffServe:Telemetry:MetricsUrl=http://$metrics_host:$p"
}

[ "$check_only" = 1 ] && exit 0

inference=services/EffServe.Inference/bin/$configuration/net10.0
gateway=services/EffServe.Gateway/bin/$configuration/net10.0
cli=services/EffServe.Cli/bin/$configuration/net10.0/effserve.dll
for dll in "$inference/EffServe.Inference.dll" "$gateway/EffServe.Gateway.dll"; do
  [ -f "$dll" ] || fail "$dll is not built; run make run (it builds first) or make build."
done
run_dir=$PWD/artifacts/run
logs=$run_dir/logs
mkdir -p "$logs"
# make cli reads the address of the running EffServe from here.
endpoint_file=$run_dir/endpoint

pids=()
names=()
stop() {
  trap - EXIT INT TERM
  rm -f "$endpoint_file"
  [ ${#pids[@]} -gt 0 ] && kill -TERM "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap stop EXIT
trap 'stop; exit 0' INT TERM

# Redis backs the shared response cache and the job service. An endpoint given in
# ConnectionStrings__redis is used as is; otherwise a private redis-server is started on a free
# loopback port when one is installed (nothing persisted), and without one EffServe runs with its
# in-process cache only (the job service then answers UNAVAILABLE).
redis_note=""
if [ -n "${ConnectionStrings__redis:-}" ]; then
  redis_note="Redis at $ConnectionStrings__redis (ConnectionStrings__redis)"
elif command -v redis-server >/dev/null; then
  redis_port=$((port + 379))
  while in_use 127.0.0.1 "$redis_port"; do redis_port=$((redis_port + 1)); done
  redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --loglevel warning >"$logs/redis.log" 2>&1 &
  pids+=($!); names+=("redis-server (log: $logs/redis.log)")
  export ConnectionStrings__redis="127.0.0.1:$redis_port"
  redis_note="a private redis-server on 127.0.0.1:$redis_port (shared cache and jobs; nothing persisted)"
else
  redis_note="no Redis (redis-server is not installed): in-process cache only, the job service answers UNAVAILABLE"
fi
echo "EffServe: $redis_note"

# The response cache is opt-in per model: EFFSERVE_CACHE=1 turns it on for every model served here.
routes=()
backends=()
for i in "${!models[@]}"; do
  model=${models[$i]}
  backend=$((port + 100 + i))
  cache_args=()
  [ "${EFFSERVE_CACHE:-0}" = 1 ] && cache_args=("--EffServe:Cache:Models:$model:Enabled=true")
  metrics=$(metrics_arg $((i + 1)))
  log=$logs/inference-$model.log
  dotnet "$inference/EffServe.Inference.dll" --contentRoot "$PWD/$inference" \
    --urls "http://127.0.0.1:$backend" \
    --EffServe:Inference:ZooPath="$zoo" --EffServe:Inference:Models:0="$model" ${cache_args[@]+"${cache_args[@]}"} \
    ${metrics:+"$metrics"} >"$log" 2>&1 &
  pids+=($!); names+=("the inference service for model $model (127.0.0.1:$backend; log: $log)")
  backends+=("$backend")
  routes+=("--EffServe:Gateway:Models:$model:Destinations:0=http://127.0.0.1:$backend")
done

metrics=$(metrics_arg 0)
dotnet "$gateway/EffServe.Gateway.dll" --contentRoot "$PWD/$gateway" --urls "http://$host:$port" "${routes[@]}" \
  ${metrics:+"$metrics"} >"$logs/gateway.log" 2>&1 &
pids+=($!); names+=("the gateway ($host:$port; log: $logs/gateway.log)")
echo "EffServe: starting ${models[*]} and the gateway; logs in $logs"

# Which process ended, and the end of its log. $1: the pid, $2: its exit status, $3: what to say.
report() {
  local j
  for j in "${!pids[@]}"; do
    if [ "${pids[$j]}" = "$1" ]; then
      echo "EffServe: ${names[$j]} $3 (exit status $2). The end of its log:" >&2
      local log=${names[$j]##*log: }; log=${log%)}
      [ -f "$log" ] && tail -n 5 "$log" | sed 's/^/    /' >&2
    fi
  done
}

# A process that ends before everything is ready failed to come up.
check_alive() {
  local pid status
  for pid in "${pids[@]}"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      status=0; wait "$pid" || status=$?
      report "$pid" "$status" "failed to come up"
      exit 1
    fi
  done
}

# Ready: each service listens only once its models are loaded and warm, the gateway once it has
# started; then every model answers ModelReady through the gateway.
ready_within=${EFFSERVE_READY_TIMEOUT:-300}
deadline=$((SECONDS + ready_within))
not_ready() {
  echo "EffServe: $1 is not ready after $ready_within s (EFFSERVE_READY_TIMEOUT); see its log." >&2
  exit 1
}
for i in "${!models[@]}"; do
  until in_use 127.0.0.1 "${backends[$i]}"; do
    check_alive
    [ $SECONDS -lt $deadline ] || not_ready "the inference service for model ${models[$i]} (log: $logs/inference-${models[$i]}.log)"
    sleep 0.5
  done
done
until in_use "$client_host" "$port"; do
  check_alive
  [ $SECONDS -lt $deadline ] || not_ready "the gateway (log: $logs/gateway.log)"
  sleep 0.5
done
if [ -f "$cli" ]; then
  until answer=$(dotnet "$cli" --endpoint "http://$client_host:$port" models --json 2>&1) \
        && ! grep -Eq '"ready": ?false' <<<"$answer"; do
    check_alive
    [ $SECONDS -lt $deadline ] || not_ready "a model behind the gateway (log: $logs/gateway.log)"
    sleep 1
  done
fi

echo "http://$client_host:$port $$" >"$endpoint_file"
echo "EffServe: serving ${models[*]}; clients call $client_host:$port (OIP v2 gRPC over h2c, through the gateway), e.g. make cli ARGS=\"models\"; Ctrl-C stops it."
if [ -n "$metrics_port" ]; then
  scrapes=()
  for name in gateway "${models[@]}"; do
    log=$logs/inference-$name.log
    [ "$name" = gateway ] && log=$logs/gateway.log
    url=$(grep -o 'Prometheus metrics at [^ ]*' "$log" | tail -n 1 | cut -d' ' -f4)
    scrapes+=("$name ${url:-unknown (see $log)}")
  done
  list=$(printf '%s, ' "${scrapes[@]}")
  echo "EffServe: Prometheus metrics: ${list%, }"
fi

# Stop everything as soon as any one process ends.
set +e
wait -n -p ended
status=$?
report "$ended" "$status" "ended"
echo "EffServe: stopping the others." >&2
exit "$status"
