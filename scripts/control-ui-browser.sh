#!/usr/bin/env bash
# The official OpenClaw Control UI (from the openclaw npm package) served by Clawgate, driven in
# headless Debian Chromium with playwright-core: it must connect, show the chat view, and render
# the echo worker's reply to a typed message. Then, on a gateway whose agent has a model (a
# scripted stand-in for an OpenAI-compatible server) and whose exec policy asks, the page must
# show the approval prompt of an exec, run it when approved and show the denial when denied.
# Saves screenshots.
#
#   scripts/control-ui-browser.sh [--binary PATH] [--screenshot FILE]
#
# Installs what it needs on first use: Debian's chromium (apt-get, as root), playwright-core into
# ~/.cache/clawgate-browser (or $CLAWGATE_BROWSER_DIR), the OpenClaw package through
# scripts/install-openclaw.sh. Where Chromium cannot be installed it says so and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."

BINARY=target/debug/clawgate
SCREENSHOT=target/control-ui.png
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) BINARY=$2; shift 2 ;;
    --screenshot) SCREENSHOT=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
    echo "installing Debian's chromium" >&2
    apt-get update -qq > /dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium > /dev/null
  fi
fi
if [ ! -x /usr/bin/chromium ]; then
  echo "SKIP: Chromium is not installed and cannot be installed here (needs root and apt-get)"
  exit 0
fi

BROWSER_DIR=${CLAWGATE_BROWSER_DIR:-$HOME/.cache/clawgate-browser}
if [ ! -d "$BROWSER_DIR/node_modules/playwright-core" ]; then
  mkdir -p "$BROWSER_DIR"
  npm install --no-audit --no-fund --prefix "$BROWSER_DIR" "playwright-core@1" > /dev/null
fi

paths=$(scripts/install-openclaw.sh)
OPENCLAW=${paths#*:}
BUNDLE=$(dirname "$OPENCLAW")/dist/control-ui
[ -f "$BUNDLE/index.html" ] || { echo "no Control UI bundle at $BUNDLE"; exit 1; }
[ -x "$BINARY" ] || cargo build --quiet --bin clawgate

. scripts/lib.sh
PORT=$(free_port)
TOKEN=ui-$RANDOM$RANDOM
"$BINARY" gateway run --port "$PORT" --token "$TOKEN" --state-dir "$WORK/state" --control-ui "$BUNDLE" \
  > "$WORK/gateway.log" 2>&1 &
GW_PID=$!
wait_for_health "$PORT" || { cat "$WORK/gateway.log"; echo "clawgate did not start"; exit 1; }
start_echo_worker "ws://127.0.0.1:$PORT" "$TOKEN" 30 "$WORK/gateway.log" || { echo "the worker did not register"; exit 1; }

mkdir -p "$(dirname "$SCREENSHOT")"
# Node resolves `playwright-core` next to the script, so the script runs from the cache folder.
cp scripts/control-ui-chromium.mjs "$BROWSER_DIR/chromium.mjs"
cp scripts/control-ui-browser.mjs "$BROWSER_DIR/run.mjs"
if ! node "$BROWSER_DIR/run.mjs" "http://127.0.0.1:$PORT" "$TOKEN" "$(realpath -m "$SCREENSHOT")" "$WORKER_PID"; then
  echo "--- gateway log"; tail -40 "$WORK/gateway.log"
  exit 1
fi

# The Automations page lists a job added over RPC.
"$BINARY" call cron.add --url "ws://127.0.0.1:$PORT" --token "$TOKEN" \
  --params '{"name": "ui-automation-ping", "schedule": {"kind": "every", "everyMs": 600000}, "payload": {"kind": "systemEvent", "text": "ping"}}' \
  > /dev/null
cp scripts/control-ui-automations.mjs "$BROWSER_DIR/automations.mjs"
if ! node "$BROWSER_DIR/automations.mjs" "http://127.0.0.1:$PORT" "$TOKEN" ui-automation-ping \
  "$(realpath -m "$(dirname "$SCREENSHOT")")/control-ui-automations.png"; then
  echo "--- gateway log"; tail -40 "$WORK/gateway.log"
  exit 1
fi

# Every page: no error banner, no call answered `unknown method` or with an error. The chat check
# killed its worker; a new one is connected, so the Devices page has one to list.
kill "$WORKER_PID" 2>/dev/null || true
start_echo_worker "ws://127.0.0.1:$PORT" "$TOKEN" 30 "$WORK/gateway.log" || { echo "the worker did not register"; exit 1; }
cp scripts/control-ui-sweep.mjs "$BROWSER_DIR/sweep.mjs"
SWEEP_SHOTS="$(realpath -m "$(dirname "$SCREENSHOT")")/control-ui-pages"
mkdir -p "$SWEEP_SHOTS"
if ! node "$BROWSER_DIR/sweep.mjs" "http://127.0.0.1:$PORT" "$TOKEN" "$SWEEP_SHOTS" ${CLAWGATE_SWEEP_MODE:-}; then
  echo "--- gateway log"; tail -40 "$WORK/gateway.log"
  exit 1
fi
[ -n "${CLAWGATE_SWEEP_ONLY:-}" ] && exit 0

# A settings page saves through config.set, and the file on disk says so.
cp scripts/control-ui-settings.mjs "$BROWSER_DIR/settings.mjs"
if ! node "$BROWSER_DIR/settings.mjs" "http://127.0.0.1:$PORT" "$TOKEN" \
  "$(realpath -m "$(dirname "$SCREENSHOT")")/control-ui-settings.png"; then
  echo "--- gateway log"; tail -40 "$WORK/gateway.log"
  exit 1
fi
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if d['cron']['skipMissedJobs'] is True else 1)" \
  "$WORK/state/openclaw.json" || { echo "FAIL: the saved setting is not in the file"; exit 1; }
echo "ok   the file holds the saved setting (cron.skipMissedJobs: true)"

# Channels in the page: a gateway with IRC on a real ngIRCd and a Telegram account whose API is
# unreachable.
NGIRCD=$(scripts/install-ngircd.sh)
IRC_PORT=$(free_port)
printf '[Global]\nName = irc.ui.test\nInfo = ui\nListen = 127.0.0.1\nPorts = %s\n[Limits]\nMaxNickLength = 30\n[Options]\nPAM = no\nIdent = no\nDNS = no\n' \
  "$IRC_PORT" > "$WORK/ngircd.conf"
"$NGIRCD" -n -f "$WORK/ngircd.conf" > /dev/null 2>&1 &
IRCD_PID=$!
CH_PORT=$(free_port)
mkdir -p "$WORK/channel-state"
cat > "$WORK/channel-state/openclaw.json" <<JSON
{"gateway": {"port": $CH_PORT, "auth": {"token": "ch-$TOKEN"}, "controlUi": {"root": "$BUNDLE"}},
 "channels": {"irc": {"host": "127.0.0.1", "port": $IRC_PORT, "tls": false, "nick": "uibot"},
              "telegram": {"botToken": "1:ui", "apiRoot": "https://127.0.0.1:$(free_port)"}}}
JSON
OPENCLAW_STATE_DIR="$WORK/channel-state" "$BINARY" gateway run > "$WORK/channel-gateway.log" 2>&1 &
CH_GW_PID=$!
wait_for_health "$CH_PORT" || true
cp scripts/control-ui-channels.mjs "$BROWSER_DIR/channels.mjs"
status=0
node "$BROWSER_DIR/channels.mjs" "http://127.0.0.1:$CH_PORT" "ch-$TOKEN" \
  "$(realpath -m "$(dirname "$SCREENSHOT")")/control-ui-channels.png" || status=1
kill "$CH_GW_PID" "$IRCD_PID" 2>/dev/null || true
wait "$CH_GW_PID" 2>/dev/null || true
if [ "$status" != 0 ]; then
  echo "--- channel gateway log"; tail -40 "$WORK/channel-gateway.log"
  exit 1
fi

# Exec approvals in the page: a gateway from openclaw.json with a model and tools.exec ask.
kill "$WORKER_PID" 2>/dev/null || true
start_model_gateway "$WORK/approval-state" "ap-$TOKEN" \
  "{\"gateway\": {\"controlUi\": {\"root\": \"$BUNDLE\"}}, \"tools\": {\"exec\": {\"host\": \"gateway\", \"mode\": \"ask\"}}}" \
  || exit 1
cp scripts/control-ui-approval.mjs "$BROWSER_DIR/approval.mjs"
SHOTS="$(realpath -m "$(dirname "$SCREENSHOT")")/control-ui-approval"
status=0
node "$BROWSER_DIR/approval.mjs" "http://127.0.0.1:$MODEL_GW_PORT" "ap-$TOKEN" "$SHOTS" || status=1
if [ "$status" != 0 ]; then
  echo "--- approval gateway log"; tail -40 "$WORK/approval-state/gateway.log"
  exit 1
fi
