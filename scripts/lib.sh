# Shared by the scripts that start Clawgate for a test: a scratch folder, cleanup of the gateway
# and worker they start, a free port, and waiting for readiness. Source it; needs $BINARY.

WORK=$(mktemp -d)
GW_PID=
WORKER_PID=
MODEL_PID=
MODEL_GW_PID=
cleanup() {
  # A worker may be gone already; under set -e a failed kill would become the exit status.
  [ -n "$WORKER_PID" ] && kill "$WORKER_PID" 2>/dev/null || true
  [ -n "$MODEL_GW_PID" ] && kill "$MODEL_GW_PID" 2>/dev/null && wait "$MODEL_GW_PID" 2>/dev/null
  [ -n "$MODEL_PID" ] && kill "$MODEL_PID" 2>/dev/null || true
  [ -n "$GW_PID" ] && kill "$GW_PID" 2>/dev/null && wait "$GW_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_for_health PORT: up to 5 s for the gateway on PORT to answer /health.
wait_for_health() {
  for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$1/health" > /dev/null 2>&1 && return 0; sleep 0.05; done
  return 1
}

# start_echo_worker URL TOKEN DELAY_MS LOG: an echo worker for agent main (its PID in WORKER_PID),
# waiting up to 5 s until the gateway writing LOG has registered it (again, when one ran before).
start_echo_worker() {
  local before
  before=$(grep -c "agent main: worker" "$4" 2>/dev/null || true)
  "$BINARY" agent --agent main --backend echo --delay-ms "$3" --url "$1" --token "$2" > "$WORK/worker.log" 2>&1 &
  WORKER_PID=$!
  for _ in $(seq 1 100); do
    [ "$(grep -c "agent main: worker" "$4" 2>/dev/null || true)" -gt "${before:-0}" ] && return 0
    sleep 0.05
  done
  return 1
}

# start_model_gateway STATE TOKEN EXTRA_JSON [GATEWAY_FLAGS...]: the scripted model
# (scripts/scripted-model.py, a stand-in for an OpenAI-compatible server; its PID in MODEL_PID) and
# a gateway started from STATE/openclaw.json, whose agent main runs on that model, with EXTRA_JSON
# merged into the file (the gateway's port in MODEL_GW_PORT, its PID in MODEL_GW_PID; it starts the
# agent's worker itself). The workspace is STATE/workspace.
start_model_gateway() {
  local state=$1 token=$2 extra=$3
  shift 3
  mkdir -p "$state/workspace"
  MODEL_PORT=$(free_port)
  python3 scripts/scripted-model.py "$MODEL_PORT" "$state/model-requests.jsonl" &
  MODEL_PID=$!
  MODEL_GW_PORT=$(free_port)
  python3 - "$state" "$MODEL_GW_PORT" "$token" "$MODEL_PORT" "$extra" <<'PY'
import json, sys
state, port, token, model_port, extra = sys.argv[1:]
doc = {
    "gateway": {"mode": "local", "port": int(port), "auth": {"mode": "token", "token": token}},
    "agents": {"defaults": {"workspace": f"{state}/workspace", "model": {"primary": "scripted/tools-1"}}},
    "models": {"providers": {"scripted": {
        "baseUrl": f"http://127.0.0.1:{model_port}/v1", "apiKey": "sk-scripted", "api": "openai-completions",
        "models": [{"id": "tools-1", "name": "Scripted tools model"}]}}},
}
def merge(into, more):
    for key, value in more.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merge(into[key], value)
        else:
            into[key] = value
merge(doc, json.loads(extra))
with open(f"{state}/openclaw.json", "w") as f:
    json.dump(doc, f, indent=2)
PY
  "$BINARY" gateway run --state-dir "$state" "$@" > "$state/gateway.log" 2>&1 &
  MODEL_GW_PID=$!
  wait_for_health "$MODEL_GW_PORT" || { cat "$state/gateway.log"; echo "clawgate did not start"; return 1; }
}
