# Shared by the scripts that start Clawgate for a test: a scratch folder, cleanup of the gateway
# and worker they start, a free port, and waiting for readiness. Source it; needs $BINARY.

WORK=$(mktemp -d)
GW_PID=
WORKER_PID=
cleanup() {
  # A worker may be gone already; under set -e a failed kill would become the exit status.
  [ -n "$WORKER_PID" ] && kill "$WORKER_PID" 2>/dev/null || true
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
# waiting up to 5 s until the gateway writing LOG has registered it.
start_echo_worker() {
  "$BINARY" agent --agent main --backend echo --delay-ms "$3" --url "$1" --token "$2" > "$WORK/worker.log" 2>&1 &
  WORKER_PID=$!
  for _ in $(seq 1 100); do grep -q "agent main: worker" "$4" && return 0; sleep 0.05; done
  return 1
}
