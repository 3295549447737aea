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

. scripts/lib.sh
PORT=$(free_port)
TOKEN=interop-$RANDOM$RANDOM
URL=ws://127.0.0.1:$PORT

runtime_flag=()
if [ "$RUNTIME" != smol ]; then runtime_flag=(--runtime "$RUNTIME"); fi
"$BINARY" gateway run --port "$PORT" --token "$TOKEN" --state-dir "$WORK/gateway-state" "${runtime_flag[@]}" > "$WORK/gateway.log" 2>&1 &
GW_PID=$!
wait_for_health "$PORT" || { cat "$WORK/gateway.log"; echo "clawgate did not start"; exit 1; }

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

# Pairing: a second gateway with silent approval off; a device (the proto example client with a
# fixed identity) asks, the real CLI lists and approves, the device gets in, a revocation locks it out.
cargo build --quiet -p clawgate-proto --example call
DEVICE_CLIENT=target/debug/examples/call
PAIR_PORT=$(free_port)
"$BINARY" gateway run --port "$PAIR_PORT" --token "$TOKEN" --state-dir "$WORK/pairing-state" --no-auto-approve-local \
  "${runtime_flag[@]}" > "$WORK/pairing-gateway.log" 2>&1 &
PAIR_PID=$!
wait_for_health "$PAIR_PORT" || true
PAIR_URL=ws://127.0.0.1:$PAIR_PORT
export CLAWGATE_DEVICE_SEED=$(python3 -c 'import os; print(os.urandom(32).hex())')
device() { set +e; DEVICE_OUT=$("$DEVICE_CLIENT" "$PAIR_URL" "$TOKEN" health 2>&1); DEVICE_RC=$?; set -e; }

device
OUT=$DEVICE_OUT RC=$DEVICE_RC
check "an unpaired device is told pairing required" 1 "'pairing required' in out"

cli node "$OPENCLAW" devices list --url "$PAIR_URL" --token "$TOKEN" --json
check "openclaw devices list --json shows the pending request" 0 "len(d['pending']) == 1 and d['paired'] == []"
REQUEST_ID=$(echo "$OUT" | python3 -c 'import json,sys; t=sys.stdin.read(); print(json.loads(t[t.index("{"):])["pending"][0]["requestId"])')
DEVICE_ID=$(echo "$OUT" | python3 -c 'import json,sys; t=sys.stdin.read(); print(json.loads(t[t.index("{"):])["pending"][0]["deviceId"])')

cli node "$OPENCLAW" devices approve "$REQUEST_ID" --url "$PAIR_URL" --token "$TOKEN"
check "openclaw devices approve" 0 "'Approved' in out"

device
OUT=$DEVICE_OUT RC=$DEVICE_RC
check "the approved device connects" 0 "'\"ok\":true' in out.replace(' ', '')"

cli node "$OPENCLAW" devices list --url "$PAIR_URL" --token "$TOKEN" --json
check "openclaw devices list shows it paired, without its token" 0 "d['paired'][0]['deviceId'] == '$DEVICE_ID' and 'token' not in d['paired'][0]['tokens'][0]"

cli node "$OPENCLAW" devices revoke --device "$DEVICE_ID" --role operator --url "$PAIR_URL" --token "$TOKEN" --json
check "openclaw devices revoke" 0 "d['deviceId'] == '$DEVICE_ID' and 'revokedAtMs' in d"

device
OUT=$DEVICE_OUT RC=$DEVICE_RC
check "a revoked device is locked out" 1 "'pairing required' in out"

# The real OpenClaw node host is a CLI that carries a device identity (role node): it is told
# "pairing required", keeps retrying, gets in once `openclaw devices approve` approved it, and is
# locked out again by a revocation.
NODE_STATE=$(mktemp -d "$WORK/node.XXXX"); mkdir -p "$NODE_STATE/home"
(cd "$NODE_STATE" && exec env HOME="$NODE_STATE/home" OPENCLAW_STATE_DIR="$NODE_STATE" OPENCLAW_CONFIG_PATH="$NODE_STATE/openclaw.json" \
  OPENCLAW_GATEWAY_TOKEN="$TOKEN" OPENCLAW_DISABLE_BONJOUR=1 OPENCLAW_NO_RESPAWN=1 \
  timeout 180 node "$OPENCLAW" node run --host 127.0.0.1 --port "$PAIR_PORT" --display-name interop-node) > "$WORK/node.log" 2>&1 &
NODE_PID=$!
NODE_REQUEST=
for _ in $(seq 1 60); do
  cli node "$OPENCLAW" devices list --url "$PAIR_URL" --token "$TOKEN" --json
  NODE_REQUEST=$(echo "$OUT" | python3 -c 'import json,sys
t=sys.stdin.read()
try:
    d=json.loads(t[t.index("{"):])
    print(next(p["requestId"] for p in d["pending"] if p.get("role")=="node"))
except Exception:
    pass')
  [ -n "$NODE_REQUEST" ] && break
  sleep 0.5
done
OUT="request ${NODE_REQUEST:-none}" RC=0
check "the OpenClaw node host (with a device identity) asks for pairing" 0 "'none' not in out"
cli node "$OPENCLAW" devices list --url "$PAIR_URL" --token "$TOKEN" --json
NODE_DEVICE=$(echo "$OUT" | python3 -c 'import json,sys
t=sys.stdin.read(); d=json.loads(t[t.index("{"):])
print(next(p["deviceId"] for p in d["pending"] if p.get("role")=="node"))' 2>/dev/null || true)

cli node "$OPENCLAW" devices approve "$NODE_REQUEST" --url "$PAIR_URL" --token "$TOKEN"
check "openclaw devices approve (a node role, approved as admin)" 0 "'Approved' in out"
for _ in $(seq 1 60); do grep -q "node-host/node role=node" "$WORK/pairing-gateway.log" && break; sleep 0.5; done
OUT=$(cat "$WORK/pairing-gateway.log") RC=0
check "the approved node host connects with its device" 0 "'node-host/node role=node' in out"

refusals_before=$(grep -c "refused: 1008 pairing required" "$WORK/pairing-gateway.log" || true)
cli node "$OPENCLAW" devices revoke --device "$NODE_DEVICE" --role node --url "$PAIR_URL" --token "$TOKEN" --json
check "openclaw devices revoke (node role)" 0 "d['deviceId'] == '$NODE_DEVICE' and d['role'] == 'node'"
for _ in $(seq 1 60); do
  [ "$(grep -c "refused: 1008 pairing required" "$WORK/pairing-gateway.log" || true)" -gt "$refusals_before" ] && break
  sleep 0.5
done
OUT="$(grep -c "refused: 1008 pairing required" "$WORK/pairing-gateway.log" || true)" RC=0
check "the revoked node host is locked out again" 0 "int(out) > $refusals_before"

# Its new request (a role upgrade now) approved with Clawgate's own command lets it in again.
connects_before=$(grep -c "node-host/node role=node" "$WORK/pairing-gateway.log" || true)
set +e
AGAIN=$("$BINARY" devices list --json --url "$PAIR_URL" --token "$TOKEN" | python3 -c 'import json,sys
d=json.load(sys.stdin); print(next(p["requestId"] for p in d["pending"] if p.get("role")=="node"))')
OUT=$("$BINARY" devices approve "$AGAIN" --url "$PAIR_URL" --token "$TOKEN" 2>&1); RC=$?
set -e
check "clawgate devices approve (the node host's role upgrade)" 0 "'$NODE_DEVICE' in out"
for _ in $(seq 1 60); do
  [ "$(grep -c "node-host/node role=node" "$WORK/pairing-gateway.log" || true)" -gt "$connects_before" ] && break
  sleep 0.5
done
OUT="$(grep -c "node-host/node role=node" "$WORK/pairing-gateway.log" || true)" RC=0
check "the node host is back in after the second approval" 0 "int(out) > $connects_before"
cli node "$OPENCLAW" nodes status --url "$PAIR_URL" --token "$TOKEN" --json
check "openclaw nodes status --json lists the connected node host" 0 \
  "[(n['nodeId'], n['displayName'], n['connected'], n['paired'], n['clientId']) for n in d['nodes']] == [('$NODE_DEVICE', 'interop-node', True, True, 'node-host')] and 'system.run' in d['nodes'][0]['commands']"
cli node "$OPENCLAW" nodes describe --node "$NODE_DEVICE" --url "$PAIR_URL" --token "$TOKEN" --json
check "openclaw nodes describe --json" 0 "d['nodeId'] == '$NODE_DEVICE' and d['displayName'] == 'interop-node' and d['connected'] is True"
kill "$NODE_PID" 2>/dev/null; wait "$NODE_PID" 2>/dev/null || true
for _ in $(seq 1 40); do
  cli node "$OPENCLAW" nodes status --url "$PAIR_URL" --token "$TOKEN" --json
  echo "$OUT" | grep -q '"connected": false' && break
  sleep 0.25
done
check "after the node host stops it is listed as paired and offline" 0 \
  "[(n['nodeId'], n['connected'], n['paired']) for n in d['nodes']] == [('$NODE_DEVICE', False, True)]"
kill "$PAIR_PID" 2>/dev/null; wait "$PAIR_PID" 2>/dev/null || true

# Configuration: a file written by the real `openclaw config set`, started on, and edited live.
CFG_STATE=$(mktemp -d "$WORK/config.XXXX"); mkdir -p "$CFG_STATE/home"
CFG_PORT=$(free_port)
cfgset() {
  (cd "$CFG_STATE" && env HOME="$CFG_STATE/home" OPENCLAW_STATE_DIR="$CFG_STATE" OPENCLAW_CONFIG_PATH="$CFG_STATE/openclaw.json" \
    node "$OPENCLAW" config set "$@" > /dev/null 2>&1)
}
cfgset gateway.mode local
cfgset gateway.port "$CFG_PORT"
cfgset gateway.auth.token "cfg-$TOKEN"
cfgset gateway.controlUi.allowedOrigins '["https://ui.example"]' --strict-json
env -u OPENCLAW_GATEWAY_TOKEN -u OPENCLAW_GATEWAY_PORT OPENCLAW_CONFIG_PATH="$CFG_STATE/openclaw.json" \
  "$BINARY" gateway run --state-dir "$CFG_STATE/gateway" "${runtime_flag[@]}" > "$WORK/config-gateway.log" 2>&1 &
CFG_PID=$!
wait_for_health "$CFG_PORT" || true
cli node "$OPENCLAW" gateway call health --url "ws://127.0.0.1:$CFG_PORT" --token "cfg-$TOKEN" --json
check "starts on a file written by openclaw config set (port and token from it)" 0 "d['ok'] is True"
OUT=$(cat "$WORK/config-gateway.log") RC=0
check "one warning lists the OpenClaw keys Clawgate does not use" 0 "out.count('does not use') == 1 and 'meta.lastTouchedVersion' in out"
cfgset gateway.auth.token "cfg2-$TOKEN"
sleep 1.5
cli node "$OPENCLAW" gateway call health --url "ws://127.0.0.1:$CFG_PORT" --token "cfg2-$TOKEN" --json
check "a token changed with openclaw config set applies live" 0 "d['ok'] is True"
cli node "$OPENCLAW" gateway call health --url "ws://127.0.0.1:$CFG_PORT" --token "cfg-$TOKEN" --json
check "the old token is refused after the change" 1 "d['error']['details']['code'] == 'AUTH_TOKEN_MISMATCH'"
# A tool policy written by the real CLI (it stores agents as agents.entries) applies live.
cfgset tools.deny '["exec"]' --strict-json
cfgset agents.list '[{"id":"main"},{"id":"ops","tools":{"allow":["group:fs"]},"sandbox":{"mode":"all","workspaceAccess":"ro"}}]' --strict-json
sleep 1.5
cli node "$OPENCLAW" gateway call tools.effective --params '{"sessionKey":"main"}' --url "ws://127.0.0.1:$CFG_PORT" --token "cfg2-$TOKEN" --json
check "tools.deny set with openclaw config set applies live (tools.effective)" 0 \
  "[t['id'] for t in d['groups'][0]['tools']] == ['read', 'ls', 'write', 'edit', 'process'] and d['notices'][0]['message'] == 'exec: denied by tools.deny entry \"exec\"'"
cli node "$OPENCLAW" gateway call tools.effective --params '{"sessionKey":"agent:ops:main"}' --url "ws://127.0.0.1:$CFG_PORT" --token "cfg2-$TOKEN" --json
check "an agent's allow list and read-only sandbox from agents.entries" 0 \
  "d['agentId'] == 'ops' and [t['id'] for t in d['groups'][0]['tools']] == ['read', 'ls'] and any('read-only' in n['message'] for n in d['notices'])"
cli node "$OPENCLAW" gateway call tools.catalog --url "ws://127.0.0.1:$CFG_PORT" --token "cfg2-$TOKEN" --json
check "gateway call tools.catalog" 0 "[g['id'] for g in d['groups']] == ['fs', 'runtime'] and sum(len(g['tools']) for g in d['groups']) == 6"
kill "$CFG_PID" 2>/dev/null; wait "$CFG_PID" 2>/dev/null || true

# Agents: Clawgate's echo worker serves agent main on the first gateway; the real CLI's `agent`
# command, curl and the official `openai` Python client get its replies.
start_echo_worker "$URL" "$TOKEN" 10 "$WORK/gateway.log" || true
cli env OPENCLAW_GATEWAY_URL="$URL" OPENCLAW_GATEWAY_TOKEN="$TOKEN" node "$OPENCLAW" agent --agent main -m "hello from openclaw" --json
check "openclaw agent --agent main --json gets the echo worker's reply" 0 \
  "d['status'] == 'ok' and d['summary'] == 'completed' and d['result']['payloads'][0]['text'] == 'hello from openclaw'"
cli env OPENCLAW_GATEWAY_URL="$URL" OPENCLAW_GATEWAY_TOKEN="$TOKEN" node "$OPENCLAW" agent --agent main -m "a plain text reply"
check "openclaw agent (text mode) prints the reply" 0 "'a plain text reply' in out"
set +e
OUT=$(curl -sN -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' "http://127.0.0.1:$PORT/v1/chat/completions" \
  -d '{"model":"openclaw/main","stream":true,"messages":[{"role":"user","content":"streamed over sse"}]}'); RC=$?
set -e
check "curl -N /v1/chat/completions streams SSE chunks ending in [DONE]" 0 \
  "out.rstrip().endswith('data: [DONE]') and ''.join(json.loads(l[6:])['choices'][0]['delta'].get('content', '') for l in out.splitlines() if l.startswith('data: {')) == 'streamed over sse'"
PYENV=${CLAWGATE_INTEROP_DIR:-$HOME/.cache/clawgate-interop}/python-openai
if [ ! -x "$PYENV/bin/python" ] || ! "$PYENV/bin/python" -c 'import openai' 2>/dev/null; then
  python3 -m venv "$PYENV" && "$PYENV/bin/pip" install --quiet 'openai>=1,<3' > /dev/null
fi
set +e
OUT=$("$PYENV/bin/python" - "$PORT" "$TOKEN" <<'PY' 2>&1
import sys
from openai import OpenAI
client = OpenAI(base_url=f"http://127.0.0.1:{sys.argv[1]}/v1", api_key=sys.argv[2])
stream = client.chat.completions.create(model="openclaw", stream=True,
                                        messages=[{"role": "user", "content": "hello from the openai client"}])
print("".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices))
print([m.id for m in client.models.list()])
PY
); RC=$?
set -e
check "the openai Python client gets a streamed completion and the model list" 0 \
  "out.splitlines()[0] == 'hello from the openai client' and 'openclaw/main' in out"
kill "$WORKER_PID" 2>/dev/null; wait "$WORKER_PID" 2>/dev/null || true

# Configuration over RPC: the CLI reads the file's hash and patches the file with it; a second
# patch on the same hash is refused as stale.
cli node "$OPENCLAW" gateway call config.get --url "$URL" --token "$TOKEN" --json
check "gateway call config.get gives the file's HMAC hash" 0 "d['hash'].startswith('hmac-sha256:v1:')"
BASE_HASH=$(OUT_TEXT="$OUT" python3 -c "import json,os; t=os.environ['OUT_TEXT']; print(json.loads(t[t.index('{'):])['hash'])")
cli node "$OPENCLAW" gateway call config.patch --url "$URL" --token "$TOKEN" --json \
  --params "{\"raw\": \"{cron: {skipMissedJobs: true}}\", \"baseHash\": \"$BASE_HASH\"}"
check "gateway call config.patch with that hash writes and applies the change" 0 \
  "d['ok'] is True and d['changedPaths'] == ['cron.skipMissedJobs'] and d['sentinel']['payload']['stats']['requiresRestart'] is False"
cli node "$OPENCLAW" gateway call config.patch --url "$URL" --token "$TOKEN" --json \
  --params "{\"raw\": \"{cron: {skipMissedJobs: false}}\", \"baseHash\": \"$BASE_HASH\"}"
check "a second patch on the same hash is refused as stale" 1 \
  "'config changed since last load' in out"
python3 -c "import json,sys; sys.exit(0 if json.load(open(sys.argv[1]))['cron']['skipMissedJobs'] is True else 1)" \
  "$WORK/gateway-state/openclaw.json" && RC=0 || RC=1
OUT="the file after the patches"
check "the file holds the first patch only" 0 "True"

# A real agent from openclaw.json: a provider (a scripted stand-in for an OpenAI-compatible
# model server, scripts/scripted-model.py) and a model for agent main. The gateway starts the
# worker itself; the real CLI's `agent` gets an answer that needed a `read` and an `exec`.
AG_STATE="$WORK/agent-state"
mkdir -p "$AG_STATE/workspace"
printf 'Interop note: the capybara sleeps at noon.\n' > "$AG_STATE/workspace/note.txt"
start_model_gateway "$AG_STATE" "ag-$TOKEN" '{}' "${runtime_flag[@]}" || exit 1
AG_PORT=$MODEL_GW_PORT
for _ in $(seq 1 100); do
  cli node "$OPENCLAW" gateway call health --url "ws://127.0.0.1:$AG_PORT" --token "ag-$TOKEN" --json
  case "$OUT" in *'"online"'*) break ;; esac
  sleep 0.1
done
check "the gateway started the worker of the agent with a model" 0 "d['agents'][0]['state'] == 'online'"
cli env OPENCLAW_GATEWAY_URL="ws://127.0.0.1:$AG_PORT" OPENCLAW_GATEWAY_TOKEN="ag-$TOKEN" node "$OPENCLAW" agent --agent main \
  -m "please read note.txt and run echo two" --json
check "openclaw agent gets an answer that needed a read and an exec" 0 \
  "d['status'] == 'ok' and d['result']['payloads'][0]['text'] == 'Checking both.\n\nTool results: Interop note: the capybara sleeps at noon.\n | two Done.'"
cli node "$OPENCLAW" gateway call models.list --url "ws://127.0.0.1:$AG_PORT" --token "ag-$TOKEN" --json
check "models.list answers from models.providers" 0 "d['models'][0]['id'] == 'tools-1' and d['models'][0]['provider'] == 'scripted' and d['models'][0]['tags'] == ['default']"
cli node "$OPENCLAW" approvals get --gateway --url "ws://127.0.0.1:$AG_PORT" --token "ag-$TOKEN" --json
check "openclaw approvals get --gateway reads the approvals snapshot" 0 \
  "d['exists'] is False and len(d['hash']) == 64 and d['path'].endswith('exec-approvals.json') and d['file']['version'] == 1"
cli node "$OPENCLAW" approvals pending --url "ws://127.0.0.1:$AG_PORT" --token "ag-$TOKEN" --json
check "openclaw approvals pending lists none" 0 "d['approvals'] == []"

# A held approval, resolved by the real CLI: with exec on an allowlist that asks on a miss, and
# an approver connected (scripts/approver.mjs), the agent's exec waits; `openclaw approvals
# pending` lists it, `openclaw approvals resolve ID allow-once` lets it run, and the agent's
# answer has the command's output.
cli node "$OPENCLAW" gateway call exec.approvals.get --url "ws://127.0.0.1:$AG_PORT" --token "ag-$TOKEN" --json
APPROVALS_HASH=$(printf '%s' "${OUT#"${OUT%%\{*}"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["hash"])')
cli node "$OPENCLAW" gateway call exec.approvals.set --url "ws://127.0.0.1:$AG_PORT" --token "ag-$TOKEN" --json \
  --params "{\"baseHash\": \"$APPROVALS_HASH\", \"file\": {\"version\": 1, \"defaults\": {\"security\": \"allowlist\", \"ask\": \"on-miss\"}}}"
check "exec.approvals.set puts exec on an allowlist that asks on a miss" 0 "d['file']['defaults']['ask'] == 'on-miss'"
node scripts/approver.mjs "ws://127.0.0.1:$AG_PORT" "ag-$TOKEN" 30 > "$WORK/approver.log" 2>&1 &
APPROVER_PID=$!
for _ in $(seq 1 50); do grep -q "approver connected" "$WORK/approver.log" && break; sleep 0.1; done
( cli env OPENCLAW_GATEWAY_URL="ws://127.0.0.1:$AG_PORT" OPENCLAW_GATEWAY_TOKEN="ag-$TOKEN" node "$OPENCLAW" agent \
    --agent main -m "please read note.txt and run echo two" --json
  printf '%s' "$OUT" > "$WORK/held-agent.out"; echo "$RC" > "$WORK/held-agent.rc" ) &
HELD_PID=$!
APPROVAL_ID=""
for _ in $(seq 1 100); do
  cli node "$OPENCLAW" approvals pending --url "ws://127.0.0.1:$AG_PORT" --token "ag-$TOKEN" --json
  APPROVAL_ID=$(printf '%s' "${OUT#"${OUT%%\{*}"}" | python3 -c 'import json,sys
try:
    a = json.load(sys.stdin)["approvals"]
    print(a[0]["id"] if a else "")
except Exception:
    print("")')
  [ -n "$APPROVAL_ID" ] && break
  sleep 0.1
done
check "openclaw approvals pending lists the held exec" 0 "len(d['approvals']) == 1 and 'echo two' in json.dumps(d)"
cli node "$OPENCLAW" approvals resolve "$APPROVAL_ID" allow-once --url "ws://127.0.0.1:$AG_PORT" --token "ag-$TOKEN" --json
check "openclaw approvals resolve ID allow-once lets it run" 0 "True"
wait "$HELD_PID" || true
OUT=$(cat "$WORK/held-agent.out" 2>/dev/null); RC=$(cat "$WORK/held-agent.rc" 2>/dev/null || echo 1)
check "the agent's answer has the approved command's output" 0 \
  "d['status'] == 'ok' and d['result']['payloads'][0]['text'].endswith('| two Done.')"
kill "$APPROVER_PID" 2>/dev/null || true
cli node "$OPENCLAW" gateway call exec.approvals.get --url "ws://127.0.0.1:$AG_PORT" --token "ag-$TOKEN" --json
APPROVALS_HASH=$(printf '%s' "${OUT#"${OUT%%\{*}"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["hash"])')
cli node "$OPENCLAW" gateway call exec.approvals.set --url "ws://127.0.0.1:$AG_PORT" --token "ag-$TOKEN" --json \
  --params "{\"baseHash\": \"$APPROVALS_HASH\", \"file\": {\"version\": 1}}"
check "the approvals file is back to its defaults" 0 "'defaults' not in d['file'] or not d['file']['defaults']"

# Cron jobs and heartbeats through the real CLI: a job is added, listed, run (an agent turn that
# reaches the scripted model), its run read back, and removed.
agc() { cli node "$OPENCLAW" "$@" --url "ws://127.0.0.1:$AG_PORT" --token "ag-$TOKEN"; }
agc cron status --json
check "openclaw cron status" 0 "d['enabled'] is True and d['storage'] == 'json' and d['jobs'] == 1"
agc cron add --name interop-ping --every 10m --system-event "interop cron ping" --json
check "openclaw cron add (every 10m, a system event for the main session)" 0 \
  "d['schedule']['everyMs'] == 600000 and d['sessionTarget'] == 'main' and d['nextRunAtMs'] == d['createdAtMs'] + 600000"
PING_ID=$(printf '%s' "${OUT#"${OUT%%\{*}"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
agc cron add --name interop-digest --cron "0 9 * * 1-5" --tz Europe/Vienna --message "write the digest" --json
check "openclaw cron add (a cron expression in a time zone, an isolated agent turn)" 0 \
  "d['schedule'] == {'kind': 'cron', 'expr': '0 9 * * 1-5', 'tz': 'Europe/Vienna'} and d['sessionTarget'] == 'isolated' and d['delivery']['mode'] == 'announce'"
DIGEST_ID=$(printf '%s' "${OUT#"${OUT%%\{*}"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
agc cron list
check "openclaw cron list shows the jobs and the heartbeat" 0 "'interop-ping' in out and 'interop-digest' in out and 'heartbeat:main' in out"
agc cron run "$DIGEST_ID" --wait --json
check "openclaw cron run --wait runs the agent turn to the end" 0 "'succeeded' in out"
agc cron runs --id "$DIGEST_ID" --json
check "openclaw cron runs reads the run with the model's answer, delivered to the main session" 0 \
  "d['entries'][0]['status'] == 'ok' and d['entries'][0]['summary'] == 'Hello from the scripted model.' and d['entries'][0]['deliveryStatus'] == 'delivered'"
agc cron remove "$PING_ID" --json
check "openclaw cron remove" 0 "d['removed'] is True"
agc system event --text "interop system event" --json
check "openclaw system event" 0 "d['ok'] is True"
agc gateway call wake --params '{"mode":"now","text":"interop wake"}' --json
check "wake starts a heartbeat turn" 0 "d['ok'] is True"
for _ in $(seq 1 50); do
  agc system heartbeat last --json
  case "$OUT" in *'"no-route"'*) break ;; esac
  sleep 0.1
done
check "openclaw system heartbeat last reads the heartbeat turn's outcome" 0 \
  "d['status'] == 'skipped' and d['reason'] == 'no-route' and d['preview'] != ''"

# Channels: a gateway with channels.irc on a real IRC server (ngIRCd, scripts/install-ngircd.sh);
# the CLI reads the channel's state through the gateway and sends through its `send` method.
# (`openclaw message send --channel irc` delivers from the CLI process itself: the IRC plugin's
# outbound mode is direct, so it never reaches a gateway, Clawgate's or OpenClaw's.)
NGIRCD=$(scripts/install-ngircd.sh)
IRC_PORT=$(free_port)
printf '[Global]\nName = irc.interop.test\nInfo = interop\nListen = 127.0.0.1\nPorts = %s\n[Limits]\nMaxNickLength = 30\n[Options]\nPAM = no\nIdent = no\nDNS = no\n[Channel]\nName = #room\n' \
  "$IRC_PORT" > "$WORK/ngircd.conf"
"$NGIRCD" -n -f "$WORK/ngircd.conf" > "$WORK/ngircd.log" 2>&1 &
IRCD_PID=$!
CH_PORT=$(free_port)
mkdir -p "$WORK/channel-state"
cat > "$WORK/channel-state/openclaw.json" <<JSON
{"gateway": {"port": $CH_PORT, "auth": {"token": "ch-$TOKEN"}},
 "channels": {"irc": {"host": "127.0.0.1", "port": $IRC_PORT, "tls": false, "nick": "interopbot",
                      "channels": ["#room"], "dmPolicy": "pairing"}},
 "hooks": {"enabled": true, "token": "hook-$TOKEN",
           "mappings": [{"match": {"path": "ci", "source": "ci"}, "messageTemplate": "build {{status}} on {{headers.x-branch}}",
                         "channel": "irc", "to": "#room"},
                        {"match": {"path": "batch"}, "forEach": "items", "messageTemplate": "item {{items[0].n}}"}]}}
JSON
OPENCLAW_STATE_DIR="$WORK/channel-state" "$BINARY" gateway run "${runtime_flag[@]}" > "$WORK/channel-gateway.log" 2>&1 &
CH_GW_PID=$!
trap 'kill $CH_GW_PID $IRCD_PID 2>/dev/null; cleanup' EXIT
wait_for_health "$CH_PORT" || true
chc() { cli env OPENCLAW_GATEWAY_PORT="$CH_PORT" OPENCLAW_GATEWAY_TOKEN="ch-$TOKEN" node "$OPENCLAW" "$@"; }
for _ in $(seq 1 100); do
  chc channels status
  case "$OUT" in *"IRC default: enabled, configured, running, connected"*) break ;; esac
  sleep 0.2
done
check "openclaw channels status shows the IRC account connected" 0 "'IRC default: enabled, configured, running, connected, dm:pairing' in out"
chc channels status --json
check "openclaw channels status --json" 0 "d['channelOrder'] == ['irc'] and d['channelAccounts']['irc'][0]['healthState'] == 'healthy'"
chc gateway call send --params '{"channel":"irc","to":"#room","message":"hello from the interop run","idempotencyKey":"interop-send-1"}' --json
check "openclaw gateway call send queues a message for the channel" 0 "d['channel'] == 'irc' and d['status'] == 'queued'"
chc gateway call send --params '{"channel":"fax","to":"x","message":"m","idempotencyKey":"interop-send-2"}' --json
check "send to an unknown channel is refused as OpenClaw refuses it" 1 "'unsupported channel: fax' in out"
chc gateway call channels.pairing.list --json
check "openclaw gateway call channels.pairing.list" 0 "d['accounts'][0]['channel'] == 'irc' and d['requests'] == []"

# DM pairing with the CLI's own commands. `openclaw pairing` reads and writes OpenClaw's local
# store (<state dir>/state/openclaw.sqlite), not the gateway; the gateway's openclaw-pairing
# process keeps that store in step. A person on IRC asks, the CLI lists and approves.
cat > "$WORK/irc-person.py" <<'PY'
import re, socket, sys, time
port, nick, bot, text = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
f = socket.create_connection(("127.0.0.1", port), timeout=30).makefile("rwb")
def send(line):
    f.write((line + "\r\n").encode()); f.flush()
send("NICK " + nick); send("USER " + nick + " 0 * :" + nick)
deadline = time.time() + 30
while time.time() < deadline:
    line = f.readline().decode(errors="replace").strip()
    if not line:
        break
    if line.startswith("PING"):
        send("PONG" + line[4:])
    if " 001 " in line:
        send("PRIVMSG " + bot + " :" + text)
    code = re.search(r"Pairing code: ([A-Z0-9]+)", line)
    if code:
        print(code.group(1)); send("QUIT :done"); break
PY
CODE=$(timeout 40 python3 "$WORK/irc-person.py" "$IRC_PORT" dave interopbot hello || true)
ocp() {
  cli env OPENCLAW_STATE_DIR="$WORK/channel-state" OPENCLAW_CONFIG_PATH="$WORK/channel-state/openclaw.json" \
    OPENCLAW_GATEWAY_PORT="$CH_PORT" OPENCLAW_GATEWAY_TOKEN="ch-$TOKEN" node "$OPENCLAW" "$@"
}
for _ in $(seq 1 10); do
  ocp pairing list irc --json
  case "$OUT" in *"\"$CODE\""*) break ;; esac
  sleep 1
done
# The CLI prints its plugin warnings first (it cannot fetch the IRC plugin here): the JSON is
# what starts on a line of its own.
check "openclaw pairing list irc shows the gateway's request" 0 \
  "'$CODE' != '' and any(r['code'] == '$CODE' and r['id'].startswith('dave!') for r in json.loads(out[out.index(chr(10) + '{'):])['requests'])"
ocp pairing approve irc "$CODE"
check "openclaw pairing approve irc <code>" 0 "'Approved irc sender dave!' in out"
for _ in $(seq 1 50); do
  grep -q "pairing of dave!.* approved" "$WORK/channel-gateway.log" && break
  sleep 0.2
done
chc gateway call channels.pairing.list --json
check "the gateway takes the CLI's approval" 0 \
  "d['requests'] == [] and 'approved' in open('$WORK/channel-gateway.log').read().split('pairing of dave!')[-1].splitlines()[0]"

# Hooks, proved with curl: the token in a header only, OpenClaw's status codes, replays, mapped
# hooks, and a reply addressed to the IRC channel. The body is $OUT's first line, the status its last.
hook() {
  local path=$1; shift
  cli curl -s -o - -w '\n%{http_code}' "$@" "http://127.0.0.1:$CH_PORT/hooks/$path"
}
J='Content-Type: application/json'
hook wake -H "Authorization: Bearer hook-$TOKEN" -H "$J" -d '{"text":"interop wake"}'
check "curl POST /hooks/wake with a Bearer token" 0 "out.endswith('200') and json.loads(out.splitlines()[0])['eventOutcome'] in ('queued', 'coalesced')"
hook "wake?token=hook-$TOKEN" -H "Authorization: Bearer hook-$TOKEN" -d '{"text":"x"}'
check "curl: a token in the query string is refused with 400" 0 "out.endswith('400')"
hook wake -H "Authorization: Bearer wrong" -d '{"text":"x"}'
check "curl: a wrong token is 401" 0 "out.endswith('401')"
hook wake -H "x-openclaw-token: hook-$TOKEN"
check "curl: GET /hooks/wake is 405" 0 "out.endswith('405')"
hook agent -H "x-openclaw-token: hook-$TOKEN" -H "Idempotency-Key: interop-1" -d '{"message":"hello from curl"}'
FIRST_RUN=${OUT%%$'\n'*}
check "curl POST /hooks/agent with x-openclaw-token admits a run" 0 "out.endswith('200') and json.loads(out.splitlines()[0])['runId']"
hook agent -H "x-openclaw-token: hook-$TOKEN" -H "Idempotency-Key: interop-1" -d '{"message":"hello from curl"}'
check "curl: the same Idempotency-Key replays the same run" 0 "out.splitlines()[0] == '''$FIRST_RUN'''"
hook agent -H "x-openclaw-token: hook-$TOKEN" -d '{"message":"report","channel":"irc","to":"#room"}'
check "curl: /hooks/agent addressed to the IRC channel is admitted" 0 "out.endswith('200')"
hook agent -H "x-openclaw-token: hook-$TOKEN" -d '{"message":"report","channel":"irc"}'
check "curl: a channel without a target is 400" 0 "out.endswith('400')"
hook ci -H "x-openclaw-token: hook-$TOKEN" -H "X-Branch: main" -d '{"source":"ci","status":"green"}'
check "curl POST /hooks/ci (a mapping) admits a run" 0 "out.endswith('200') and json.loads(out.splitlines()[0])['runId']"
hook ci -H "x-openclaw-token: hook-$TOKEN" -d '{"source":"other"}'
check "curl: a payload no mapping matches is 404" 0 "out.endswith('404')"
hook batch -H "x-openclaw-token: hook-$TOKEN" -d '{"items":[{"n":1},{"n":2}]}'
check "curl: a forEach mapping starts one run per item" 0 "out.endswith('200') and json.loads(out.splitlines()[0])['dispatched'] == 2"
hook batch -H "x-openclaw-token: hook-$TOKEN" -d '{"items":[]}'
check "curl: a forEach over nothing is 204" 0 "out.endswith('204')"
head -c 300000 /dev/zero | tr '\0' 'x' | sed 's/^/{"text":"/; s/$/"}/' > "$WORK/big.json"
hook wake -H "x-openclaw-token: hook-$TOKEN" --data-binary "@$WORK/big.json"
check "curl: a body over 256 KiB is 413" 0 "out.endswith('413')"
kill "$CH_GW_PID" "$IRCD_PID" 2>/dev/null || true

echo "interop: $passed passed, $failed failed"
[ "$failed" = 0 ]
