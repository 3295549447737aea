#!/usr/bin/env bash
# Runs the real OpenClaw CLI (openclaw@2026.9.6) against Clawgate and asserts on what it prints.
#
#   scripts/interop-openclaw.sh [--runtime smol] [--binary PATH]
#
# Installs Node 24 and the CLI into a cache folder on first use (scripts/install-openclaw.sh),
# starts Clawgate on a free loopback port with a throwaway token, and gives every CLI run its own
# throwaway state directory. Exits non-zero on the first failed check.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNTIME=smol
BINARY=target/debug/clawgate
while [ $# -gt 0 ]; do
  case "$1" in
    --runtime) RUNTIME=$2; shift 2 ;;
    --binary) BINARY=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

paths=$(scripts/install-openclaw.sh)
NODE_BIN=${paths%%:*}
OPENCLAW=${paths#*:}
export PATH="$NODE_BIN:$PATH"
[ -x "$BINARY" ] || cargo build --quiet --bin clawgate

WORK=$(mktemp -d)
GW_PID=
cleanup() {
  [ -n "$GW_PID" ] && kill "$GW_PID" 2>/dev/null && wait "$GW_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
TOKEN=interop-$RANDOM$RANDOM
URL=ws://127.0.0.1:$PORT

runtime_flag=()
if [ "$RUNTIME" != smol ]; then runtime_flag=(--runtime "$RUNTIME"); fi
"$BINARY" gateway run --port "$PORT" --token "$TOKEN" --state-dir "$WORK/gateway-state" "${runtime_flag[@]}" > "$WORK/gateway.log" 2>&1 &
GW_PID=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$PORT/health" > /dev/null 2>&1 && break
  sleep 0.05
done
curl -fsS "http://127.0.0.1:$PORT/health" > /dev/null || { cat "$WORK/gateway.log"; echo "clawgate did not start"; exit 1; }

passed=0
failed=0
# Runs the CLI with a fresh state directory; output in $OUT, exit code in $RC.
cli() {
  local state
  state=$(mktemp -d "$WORK/state.XXXX")
  mkdir -p "$state/home"
  echo "{\"gateway\":{\"mode\":\"local\",\"port\":$PORT}}" > "$state/openclaw.json"
  set +e
  OUT=$(cd "$state" && env HOME="$state/home" OPENCLAW_STATE_DIR="$state" OPENCLAW_CONFIG_PATH="$state/openclaw.json" \
    OPENCLAW_DISABLE_BONJOUR=1 OPENCLAW_NO_RESPAWN=1 "$@" 2>&1)
  RC=$?
  set -e
}
# check NAME EXPECTED_RC PYTHON_ASSERTION (on the parsed JSON in `d`, or the raw text in `out`)
check() {
  local name=$1 want_rc=$2 assertion=$3
  local json=${OUT#"${OUT%%[\{\[]*}"}
  if [ "$RC" = "$want_rc" ] && OUT_TEXT="$OUT" JSON_TEXT="$json" python3 -c "
import json, os, sys
out = os.environ['OUT_TEXT']
try:
    d = json.loads(os.environ['JSON_TEXT'])
except Exception:
    d = None
sys.exit(0 if ($assertion) else 1)
"; then
    echo "ok   [$RUNTIME] $name"
    passed=$((passed + 1))
  else
    echo "FAIL [$RUNTIME] $name (exit $RC, wanted $want_rc)"
    echo "$OUT" | head -40 | sed 's/^/     | /'
    failed=$((failed + 1))
  fi
}

cli node "$OPENCLAW" gateway call health --url "$URL" --token "$TOKEN" --json
check "gateway call health --json" 0 "d['ok'] is True and d['defaultAgentId'] == 'main' and 'eventLoop' in d"

cli node "$OPENCLAW" gateway call status --url "$URL" --token "$TOKEN" --json
check "gateway call status --json" 0 "'runtimeVersion' in d and d['heartbeat']['defaultAgentId'] == 'main'"

cli node "$OPENCLAW" gateway call system-presence --url "$URL" --token "$TOKEN" --json
check "gateway call system-presence --json" 0 "isinstance(d, list) and any(e.get('mode') == 'gateway' for e in d)"

cli node "$OPENCLAW" gateway call health --url "$URL" --token "wrong-$TOKEN" --json
check "bad token is refused with AUTH_TOKEN_MISMATCH" 1 "d['ok'] is False and d['error']['details']['code'] == 'AUTH_TOKEN_MISMATCH'"

cli node "$OPENCLAW" gateway call no.such.method --url "$URL" --token "$TOKEN" --json
check "unknown method" 1 "d['ok'] is False and d['error']['message'] == 'unknown method: no.such.method'"

cli env OPENCLAW_GATEWAY_PORT="$PORT" OPENCLAW_GATEWAY_TOKEN="$TOKEN" node "$OPENCLAW" health --json
check "health --json (port and token from the environment)" 0 "d['ok'] is True"

cli env OPENCLAW_GATEWAY_TOKEN="$TOKEN" node "$OPENCLAW" gateway status --json
check "gateway status --json (probe mode)" 0 "d['rpc']['ok'] is True and d['rpc']['auth']['scopes'] == [] and d['gateway']['port'] == $PORT"

cli env OPENCLAW_GATEWAY_TOKEN="$TOKEN" node "$OPENCLAW" gateway probe --json
check "gateway probe --json (probe mode)" 0 "d['ok'] is True and d['targets'][0]['connect']['ok'] is True and d['targets'][0]['auth']['capability'] == 'connected_no_operator_scope'"

cli node "$OPENCLAW" logs --url "$URL" --token "$TOKEN" --plain
check "logs (the gateway's own log through logs.tail)" 0 "'listening on ws://127.0.0.1:$PORT' in out and 'connected' in out"

echo "interop: $passed passed, $failed failed"
[ "$failed" = 0 ]
