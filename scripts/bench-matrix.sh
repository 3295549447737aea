#!/usr/bin/env bash
# Runs the load tool against Clawgate (smol and mio runtimes) and the real OpenClaw gateway, on
# loopback, several times each, and writes BENCHMARKS.md (medians and ratios) and
# benches/ratios.svg.
#
#   scripts/bench-matrix.sh [--runs N] [--seconds S] [--skip-openclaw]
#
# Takes about 15 minutes with the defaults (OpenClaw needs ~20 s to start, each time).
# Not part of .ci/run: benchmark figures are measured by hand and reported.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=3
SECONDS_PER_SCENARIO=3
SKIP_OPENCLAW=0
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS=$2; shift 2 ;;
    --seconds) SECONDS_PER_SCENARIO=$2; shift 2 ;;
    --skip-openclaw) SKIP_OPENCLAW=1; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

cargo build --release --quiet -p clawgate -p clawgate-benches
BENCH=target/release/clawgate-bench
OUT=$(mktemp -d)
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_listening() {
  for _ in $(seq 1 1200); do
    curl -fsS "http://127.0.0.1:$1/health" > /dev/null 2>&1 && return 0
    sleep 0.05
  done
  return 1
}

openclaw_env() {
  local state=$1
  echo env HOME="$state/home" OPENCLAW_STATE_DIR="$state" OPENCLAW_CONFIG_PATH="$state/openclaw.json" \
    OPENCLAW_SKIP_CHANNELS=1 OPENCLAW_DISABLE_BONJOUR=1 OPENCLAW_NO_RESPAWN=1 OPENCLAW_SKIP_CRON=1 \
    OPENCLAW_SKIP_CANVAS_HOST=1 OPENCLAW_SKIP_GMAIL_WATCHER=1 OPENCLAW_EXEC_SHELL_SNAPSHOT=0
}

# gateway_command NAME PORT TOKEN STATE -> the command line that starts that gateway
gateway_command() {
  case "$1" in
    clawgate-smol) echo "$PWD/target/release/clawgate gateway run --port $2 --token $3 --runtime smol --state-dir $4/clawgate" ;;
    clawgate-mio) echo "$PWD/target/release/clawgate gateway run --port $2 --token $3 --runtime mio --state-dir $4/clawgate" ;;
    openclaw) echo "$(openclaw_env "$4") node $OPENCLAW gateway run --allow-unconfigured --bind loopback --port $2 --auth token --token $3" ;;
  esac
}

GATEWAYS=(clawgate-smol clawgate-mio)
if [ "$SKIP_OPENCLAW" = 0 ]; then
  paths=$(scripts/install-openclaw.sh)
  export PATH="${paths%%:*}:$PATH"
  OPENCLAW=${paths#*:}
  GATEWAYS+=(openclaw)
fi

for gw in "${GATEWAYS[@]}"; do
  for run in $(seq 1 "$RUNS"); do
    port=$(free_port)
    token=bench-$RANDOM$RANDOM
    state=$(mktemp -d); mkdir -p "$state/home"
    cmd=$(gateway_command "$gw" "$port" "$token" "$state")
    echo "== $gw run $run: spawn to first hello-ok" >&2
    # shellcheck disable=SC2086
    "$BENCH" --spawn-hello --port "$port" --token "$token" -- $cmd > "$OUT/$gw.$run.spawn.json"
    sleep 1
    echo "== $gw run $run: load scenarios" >&2
    # shellcheck disable=SC2086
    (cd "$state" && exec $cmd > "$state/gateway.log" 2>&1) &
    pid=$!
    wait_listening "$port" || { echo "$gw did not start" >&2; kill "$pid" 2>/dev/null; exit 1; }
    # OpenClaw refuses connects until its startup sidecars are up: wait for a hello-ok.
    "$BENCH" --url "ws://127.0.0.1:$port" --token "$token" --seconds 60 wait-hello > /dev/null
    # `exec` makes $pid the gateway process itself (for OpenClaw: its main process, not its workers).
    "$BENCH" --url "ws://127.0.0.1:$port" --token "$token" --seconds "$SECONDS_PER_SCENARIO" --pid "$pid" \
      > "$OUT/$gw.$run.load.json"
    kill -TERM "$pid" 2>/dev/null || true
    pkill -TERM -P "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    rm -rf "$state"
  done
done

python3 scripts/bench_report.py "$OUT" "$RUNS" "${GATEWAYS[@]}"
echo "raw results in $OUT" >&2
