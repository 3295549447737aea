#!/usr/bin/env bash
# Measures runs through one agent whose model is a fast scripted stand-in (clawgate-bench
# --serve-model): a text run (one model turn) and a tool run (model -> read -> model), one at a
# time, and the RSS of the gateway and of the worker it started. The difference between the two
# runs is what a tool round trip adds.
#
#   scripts/bench-agent-tools.sh [--runtime smol|mio] [--seconds S]
#
# Not part of .ci/run: benchmark figures are measured by hand and reported.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNTIME=smol
SECONDS_PER_SCENARIO=5
while [ $# -gt 0 ]; do
  case "$1" in
    --runtime) RUNTIME=$2; shift 2 ;;
    --seconds) SECONDS_PER_SCENARIO=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
cargo build --release --quiet -p clawgate -p clawgate-benches
BINARY=target/release/clawgate
BENCH=target/release/clawgate-bench
. scripts/lib.sh

STATE="$WORK/state"
mkdir -p "$STATE/workspace"
echo "bench note" > "$STATE/workspace/bench-note.txt"
MODEL_PORT=$(free_port)
"$BENCH" --serve-model "$MODEL_PORT" &
MODEL_PID=$!
PORT=$(free_port)
cat > "$STATE/openclaw.json" <<JSON
{ "gateway": { "port": $PORT, "auth": { "mode": "token", "token": "bench" } },
  "agents": { "defaults": { "workspace": "$STATE/workspace", "model": { "primary": "fast/m" } } },
  "models": { "providers": { "fast": { "baseUrl": "http://127.0.0.1:$MODEL_PORT/v1", "api": "openai-completions",
                                        "models": [ { "id": "m" } ] } } } }
JSON
"$BINARY" gateway run --state-dir "$STATE" --runtime "$RUNTIME" > "$WORK/gateway.log" 2>&1 &
GW_PID=$!
wait_for_health "$PORT" || { cat "$WORK/gateway.log"; exit 1; }
for _ in $(seq 1 100); do
  WORKER=$(cat /proc/$GW_PID/task/*/children 2>/dev/null | tr ' ' '\n' | grep -v '^$' | head -1 || true)
  [ -n "$WORKER" ] && curl -fsS -H "Authorization: Bearer bench" "http://127.0.0.1:$PORT/v1/models" > /dev/null && break
  sleep 0.1
done
sleep 1
echo "== $RUNTIME: a text run (one model turn), one at a time"
"$BENCH" --url "ws://127.0.0.1:$PORT" --token bench --seconds "$SECONDS_PER_SCENARIO" --pid "$GW_PID" --message "hello" agent-1x1 2>/dev/null
echo "== $RUNTIME: a tool run (model -> read -> model), one at a time; RSS halfway"
( sleep "$((SECONDS_PER_SCENARIO / 2))"; grep VmRSS "/proc/$GW_PID/status" "/proc/$WORKER/status" ) &
"$BENCH" --url "ws://127.0.0.1:$PORT" --token bench --seconds "$SECONDS_PER_SCENARIO" --pid "$GW_PID" --message "please read the note" agent-1x1 2>/dev/null
wait $!
echo "== $RUNTIME: one tools.invoke (read) through the gateway, one at a time"
"$BENCH" --url "ws://127.0.0.1:$PORT" --token bench --seconds "$SECONDS_PER_SCENARIO" --pid "$GW_PID" tool-1x1 2>/dev/null
kill "$MODEL_PID" 2>/dev/null || true
