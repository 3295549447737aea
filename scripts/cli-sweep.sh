#!/usr/bin/env bash
# Runs every command of scripts/cli-sweep.list with the real `openclaw` CLI against Clawgate and
# reports how many work (exit 0). With --real, runs them against the real OpenClaw gateway as
# well (about 20 s to start, 1 GB of memory) and prints both counts side by side.
#
#   scripts/cli-sweep.sh [--runtime smol|mio] [--binary PATH] [--real]
#
# A list line may end in a third column, `gap: <reason>`: a command known not to work on
# Clawgate yet. The sweep fails when a command without one fails on Clawgate, and when a
# command with one works (the gap is closed: remove the mark).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNTIME=smol
BINARY=target/debug/clawgate
REAL=
while [ $# -gt 0 ]; do
  case "$1" in
    --runtime) RUNTIME=$2; shift 2 ;;
    --binary) BINARY=$2; shift 2 ;;
    --real) REAL=1; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

paths=$(scripts/install-openclaw.sh)
NODE_BIN=${paths%%:*}
OPENCLAW=${paths#*:}
export PATH="$NODE_BIN:$PATH"
[ -x "$BINARY" ] || cargo build --quiet --bin clawgate

. scripts/lib.sh
TOKEN=sweep-$RANDOM$RANDOM

PORT=$(free_port)
runtime_flag=()
if [ "$RUNTIME" != smol ]; then runtime_flag=(--runtime "$RUNTIME"); fi
"$BINARY" gateway run --port "$PORT" --token "$TOKEN" --state-dir "$WORK/gateway-state" "${runtime_flag[@]}" \
  > "$WORK/gateway.log" 2>&1 &
GW_PID=$!
wait_for_health "$PORT" || { cat "$WORK/gateway.log"; echo "clawgate did not start"; exit 1; }

REAL_PORT=
if [ -n "$REAL" ]; then
  REAL_PORT=$(free_port)
  mkdir -p "$WORK/real/home"
  (cd "$WORK/real" && exec env HOME="$WORK/real/home" OPENCLAW_STATE_DIR="$WORK/real" OPENCLAW_CONFIG_PATH="$WORK/real/openclaw.json" \
    OPENCLAW_SKIP_CHANNELS=1 OPENCLAW_DISABLE_BONJOUR=1 OPENCLAW_NO_RESPAWN=1 OPENCLAW_SKIP_CANVAS_HOST=1 \
    OPENCLAW_SKIP_GMAIL_WATCHER=1 OPENCLAW_EXEC_SHELL_SNAPSHOT=0 \
    node "$OPENCLAW" gateway run --allow-unconfigured --bind loopback --port "$REAL_PORT" --auth token --token "$TOKEN") \
    > "$WORK/real-gateway.log" 2>&1 &
  REAL_PID=$!
  trap 'kill "$REAL_PID" 2>/dev/null; wait "$REAL_PID" 2>/dev/null; cleanup' EXIT
  # It opens its port after about 15 s and takes connects about 4 s later.
  for _ in $(seq 1 120); do
    if (cd "$WORK" && env HOME="$WORK/real/home" OPENCLAW_STATE_DIR="$WORK/real" node "$OPENCLAW" gateway call health \
        --url "ws://127.0.0.1:$REAL_PORT" --token "$TOKEN" --json > /dev/null 2>&1); then break; fi
    sleep 1
  done
fi

# Runs one command against the gateway on port $1; exit code in $RC, output in $OUT.
run_on() {
  local port=$1 args=$2 state
  state=$(mktemp -d "$WORK/cli.XXXX")
  mkdir -p "$state/home"
  echo "{\"gateway\":{\"mode\":\"local\",\"port\":$port}}" > "$state/openclaw.json"
  args=${args//\{URL\}/ws://127.0.0.1:$port}
  args=${args//\{TOKEN\}/$TOKEN}
  # The arguments are split on spaces; a JSON argument in the list has none.
  read -r -a argv <<< "$args"
  set +e
  OUT=$(cd "$state" && timeout 60 env HOME="$state/home" OPENCLAW_STATE_DIR="$state" OPENCLAW_CONFIG_PATH="$state/openclaw.json" \
    OPENCLAW_GATEWAY_PORT="$port" OPENCLAW_GATEWAY_TOKEN="$TOKEN" OPENCLAW_DISABLE_BONJOUR=1 OPENCLAW_NO_RESPAWN=1 \
    node "$OPENCLAW" "${argv[@]}" 2>&1)
  RC=$?
  set -e
}

total=0
works=0
real_works=0
unexpected=0
while IFS=$'\t' read -r name args gap; do
  case "$name" in ''|'#'*) continue ;; esac
  total=$((total + 1))
  run_on "$PORT" "$args"
  ours=$RC
  ours_out=$OUT
  real=""
  if [ -n "$REAL" ]; then
    run_on "$REAL_PORT" "$args"
    real=" (real gateway: exit $RC)"
    [ "$RC" = 0 ] && real_works=$((real_works + 1))
  fi
  if [ "$ours" = 0 ]; then
    works=$((works + 1))
    if [ -n "$gap" ]; then
      echo "FAIL $name works now; remove its mark \"$gap\"$real"
      unexpected=$((unexpected + 1))
    else
      echo "ok   $name$real"
    fi
  elif [ -n "$gap" ]; then
    echo "gap  $name: ${gap#gap: }$real"
  else
    echo "FAIL $name (exit $ours)$real"
    echo "$ours_out" | tail -8 | sed 's/^/     | /'
    unexpected=$((unexpected + 1))
  fi
done < scripts/cli-sweep.list

echo "cli sweep [$RUNTIME]: $works of $total commands work against Clawgate"
[ -n "$REAL" ] && echo "cli sweep: $real_works of $total commands work against the real gateway"
[ "$unexpected" = 0 ]
