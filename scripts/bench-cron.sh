#!/usr/bin/env bash
# Memory with 1,000 cron jobs: the release gateway's resident set started on an empty state
# directory and on one holding 1,000 jobs (half intervals, half cron expressions in time zones),
# then the scheduler's criterion figures.
#   scripts/bench-cron.sh [--no-criterion]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
cargo build --release --quiet --bin clawgate
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

rss_with() {
  local jobs=$1 state="$work/state-$1" port
  port=$(( 23000 + jobs % 1000 ))
  mkdir -p "$state/cron"
  python3 - "$jobs" > "$state/cron/jobs.json" <<'PY'
import json, sys
n = int(sys.argv[1]); start = 1798761600000
zones = ["Europe/Vienna", "America/New_York", "Asia/Tokyo", "UTC"]
jobs = []
for i in range(n):
    sched = ({"kind": "every", "everyMs": 60000 * (5 + i % 120), "anchorMs": start} if i % 2 == 0
             else {"kind": "cron", "expr": f"{i % 60} {i % 24} * * *", "tz": zones[i % 4]})
    jobs.append({"id": f"job-{i:04}", "name": f"job {i}", "enabled": True, "createdAtMs": start,
                 "updatedAtMs": start, "schedule": sched, "sessionTarget": "main", "wakeMode": "now",
                 "payload": {"kind": "systemEvent", "text": f"reminder {i}"}, "state": {}})
print(json.dumps({"version": 1, "jobs": jobs}))
PY
  target/release/clawgate gateway run --port "$port" --token bench --state-dir "$state" --no-workers \
    > "$work/gw-$jobs.log" 2>&1 &
  local pid=$!
  wait_for_health "$port" || { cat "$work/gw-$jobs.log"; exit 1; }
  sleep 1
  local kb
  kb=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  echo "$kb"
}
empty=$(rss_with 0)
full=$(rss_with 1000)
awk -v e="$empty" -v f="$full" 'BEGIN {
  printf "RSS, no cron jobs:    %.1f MB\n", e / 1024
  printf "RSS, 1,000 cron jobs: %.1f MB (%.1f KB per job)\n", f / 1024, (f - e) / 1000 }'
if [ "${1:-}" != --no-criterion ]; then
  cargo bench -p clawgate-benches --bench scheduler 2>&1 | grep -E "^scheduler|time:"
fi
