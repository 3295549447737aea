#!/usr/bin/env bash
# Figures of the chat channels, run by hand: one gateway (release build) with IRC (a real
# ngIRCd), Matrix (a real Synapse) and Telegram (the Bot API stand-in) connected at once, an echo
# worker, and a person on each network sending DMs one at a time. Prints, per channel, the round
# trip from the person's message to the echo reply (p50/p99/max over N messages) and the resident
# memory of the gateway and of each adapter process.
#
#   scripts/bench-channels.sh [N]        (default 200 messages per channel)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200}
cargo build --release --quiet --bin clawgate
BINARY=target/release/clawgate
. scripts/lib.sh
NGIRCD=$(scripts/install-ngircd.sh)
SYNAPSE=$(scripts/install-synapse.sh)
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null; cleanup' EXIT

IRC_PORT=$(free_port); HS_PORT=$(free_port); TG_PORT=$(free_port); PORT=$(free_port)
printf '[Global]\nName = irc.bench.test\nInfo = bench\nListen = 127.0.0.1\nPorts = %s\n[Limits]\nMaxNickLength = 30\n[Options]\nPAM = no\nIdent = no\nDNS = no\n' \
  "$IRC_PORT" > "$WORK/ngircd.conf"
"$NGIRCD" -n -f "$WORK/ngircd.conf" > "$WORK/ngircd.log" 2>&1 & PIDS+=($!)

mkdir -p "$WORK/synapse"
# Generated in its own folder: Synapse's log file goes where the generator runs.
(cd "$WORK/synapse" && "$SYNAPSE" -m synapse.app.homeserver --server-name localhost --config-path "$WORK/synapse/hs.yaml" \
  --data-directory "$WORK/synapse" --generate-config --report-stats=no > /dev/null)
sed -i "s/port: 8008/port: $HS_PORT/" "$WORK/synapse/hs.yaml"
limit='{per_second: 1000, burst_count: 1000}'
cat >> "$WORK/synapse/hs.yaml" <<YAML

enable_registration: true
enable_registration_without_verification: true
trusted_key_servers: []
suppress_key_server_warning: true
rc_message: $limit
rc_registration: $limit
rc_login: {address: $limit, account: $limit, failed_attempts: $limit}
rc_joins: {local: $limit, remote: $limit}
rc_invites: {per_room: $limit, per_user: $limit, per_issuer: $limit}
YAML
(cd "$WORK/synapse" && "$SYNAPSE" -m synapse.app.homeserver -c hs.yaml > "$WORK/synapse.log" 2>&1) & PIDS+=($!)

openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/key.pem" -out "$WORK/cert.pem" -days 1 \
  -subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1" -addext "basicConstraints=critical,CA:FALSE" 2> /dev/null
python3 scripts/telegram-bot-api-standin.py --port "$TG_PORT" --token 1:bench --cert "$WORK/cert.pem" --key "$WORK/key.pem" \
  > /dev/null 2>&1 & PIDS+=($!)

for _ in $(seq 1 300); do curl -fs "http://127.0.0.1:$HS_PORT/_matrix/client/versions" > /dev/null && break; sleep 0.2; done
register() {
  curl -fs -X POST "http://127.0.0.1:$HS_PORT/_matrix/client/v3/register" -H 'Content-Type: application/json' \
    -d "{\"username\":\"$1\",\"password\":\"bench-password-1\",\"auth\":{\"type\":\"m.login.dummy\"}}" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}
register bot > /dev/null
PERSON_TOKEN=$(register person)

mkdir -p "$WORK/state"
cat > "$WORK/state/openclaw.json" <<JSON
{"gateway": {"port": $PORT, "auth": {"token": "bench-token"}},
 "channels": {
   "irc": {"host": "127.0.0.1", "port": $IRC_PORT, "tls": false, "nick": "benchbot",
           "dmPolicy": "allowlist", "allowFrom": ["*"]},
   "matrix": {"homeserver": "http://127.0.0.1:$HS_PORT", "userId": "@bot:localhost",
              "password": "bench-password-1", "autoJoin": "always", "dm": {"policy": "allowlist", "allowFrom": ["*"]}},
   "telegram": {"botToken": "1:bench", "apiRoot": "https://127.0.0.1:$TG_PORT",
                "dmPolicy": "allowlist", "allowFrom": ["*"]}}}
JSON
OPENCLAW_STATE_DIR="$WORK/state" SSL_CERT_FILE="$WORK/cert.pem" "$BINARY" gateway run > "$WORK/gateway.log" 2>&1 &
GW_PID=$!
wait_for_health "$PORT" || { cat "$WORK/gateway.log"; exit 1; }
"$BINARY" agent --backend echo --url "ws://127.0.0.1:$PORT" --token bench-token > /dev/null 2>&1 & PIDS+=($!)

GW_PID=$GW_PID N=$N IRC_PORT=$IRC_PORT HS_PORT=$HS_PORT TG_PORT=$TG_PORT PERSON_TOKEN=$PERSON_TOKEN \
  CERT="$WORK/cert.pem" python3 - <<'PY'
import json, os, socket, ssl, time, urllib.request

n = int(os.environ["N"])
def pct(xs):
    xs = sorted(xs)
    at = lambda q: xs[int((len(xs) - 1) * q)]
    return f"p50 {at(0.5)*1000:.2f} ms, p99 {at(0.99)*1000:.2f} ms, max {xs[-1]*1000:.2f} ms"

def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))

def children(pid):
    kids = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            kids += [int(p) for p in f.read().split()]
    return kids

def cmdline(pid):
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().replace(b"\0", b" ").decode()

# IRC: a raw client.
irc = socket.create_connection(("127.0.0.1", int(os.environ["IRC_PORT"])))
buf = b""
def irc_line():
    global buf
    while b"\r\n" not in buf:
        buf += irc.recv(65536)
    line, buf = buf.split(b"\r\n", 1)
    line = line.decode()
    if line.startswith("PING"):
        irc.sendall(("PONG" + line[4:] + "\r\n").encode())
    return line
irc.sendall(b"NICK person\r\nUSER person 0 * :person\r\n")
while " 001 " not in irc_line():
    pass
deadline = time.time() + 30
irc_times = []
while time.time() < deadline:
    irc.sendall(b"PRIVMSG benchbot :warm\r\n")
    t0 = time.time()
    got = False
    irc.settimeout(2)
    try:
        while True:
            l = irc_line()
            if "PRIVMSG person :warm" in l:
                got = True
                break
            if " 401 " in l:
                break
    except socket.timeout:
        pass
    irc.settimeout(None)
    if got:
        break
    time.sleep(0.5)
print("irc: connected", flush=True)
for i in range(min(n, 100)):
    t0 = time.time()
    irc.sendall(f"PRIVMSG benchbot :ping {i}\r\n".encode())
    while f"PRIVMSG person :ping {i}" not in irc_line():
        pass
    irc_times.append(time.time() - t0)
    time.sleep(1.05)  # ngIRCd throttles a client that sends more than one command a second

print("irc: done", flush=True)
# Matrix: the person's client over the client-server API.
hs = f"http://127.0.0.1:{os.environ['HS_PORT']}"
tok = os.environ["PERSON_TOKEN"]
def mx(method, path, body=None):
    req = urllib.request.Request(hs + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                 headers={"Authorization": f"Bearer {tok}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)
room = mx("POST", "/_matrix/client/v3/createRoom", {"invite": ["@bot:localhost"], "is_direct": True})["room_id"]
for _ in range(300):
    if "@bot:localhost" in mx("GET", f"/_matrix/client/v3/rooms/{room}/joined_members")["joined"]:
        break
    time.sleep(0.1)
since = mx("GET", "/_matrix/client/v3/sync?timeout=0")["next_batch"]
mx_times = []
for i in range(n):
    t0 = time.time()
    mx("PUT", f"/_matrix/client/v3/rooms/{room}/send/m.room.message/b{i}", {"msgtype": "m.text", "body": f"ping {i}"})
    done = False
    while not done:
        s = mx("GET", f"/_matrix/client/v3/sync?timeout=5000&since={since}")
        since = s["next_batch"]
        for ev in s.get("rooms", {}).get("join", {}).get(room, {}).get("timeline", {}).get("events", []):
            if ev.get("sender") == "@bot:localhost" and ev.get("content", {}).get("body") == f"ping {i}":
                done = True
    mx_times.append(time.time() - t0)

print("matrix: done", flush=True)
# Telegram: the stand-in's test routes.
ctx = ssl.create_default_context(cafile=os.environ["CERT"])
tg = f"https://127.0.0.1:{os.environ['TG_PORT']}"
def tg_call(path, body=None):
    req = urllib.request.Request(tg + path, method="POST" if body is not None else "GET",
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, context=ctx) as r:
        return json.load(r)
tg_times = []
person = {"id": 4242, "type": "private", "first_name": "P"}
for i in range(n):
    before = len(tg_call("/_test/sent"))
    t0 = time.time()
    tg_call("/_test/message", {"chat": person, "from": {"id": 4242, "is_bot": False, "first_name": "P"}, "text": f"ping {i}"})
    while len(tg_call("/_test/sent")) <= before:
        time.sleep(0.001)
    tg_times.append(time.time() - t0)

gw = int(os.environ["GW_PID"])
print(f"IRC      ({len(irc_times)} DMs): {pct(irc_times)}")
print(f"Matrix   ({n} DMs): {pct(mx_times)}")
print(f"Telegram ({n} DMs): {pct(tg_times)}")
print(f"RSS: gateway {rss(gw)} KiB")
for c in children(gw):
    line = cmdline(c)
    if " channel " in line:
        print(f"RSS: {line.split('--channel ')[1].split()[0]} adapter {rss(c)} KiB")
PY
