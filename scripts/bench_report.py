#!/usr/bin/env python3
"""Turns the raw results of scripts/bench-matrix.sh into BENCHMARKS.md and benches/ratios.svg.

Usage: bench_report.py RESULTS_DIR RUNS GATEWAY...
"""
import json
import os
import platform
import statistics
import subprocess
import sys

results_dir, runs, gateways = sys.argv[1], int(sys.argv[2]), sys.argv[3:]


def load(gw, run, kind):
    path = os.path.join(results_dir, f"{gw}.{run}.{kind}.json")
    try:
        with open(path) as f:
            return json.loads(f.read().strip().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        return {}


def dig(obj, path):
    for key in path:
        if not isinstance(obj, dict) or key not in obj:
            return None
        obj = obj[key]
    return obj if isinstance(obj, (int, float)) else None


# (label, kind, path, unit, higher_is_better, target for Clawgate)
FIGURES = [
    ("spawn -> first hello-ok", "spawn", ["spawn_to_hello_ms"], "ms", False, "< 10 ms"),
    ("idle RSS", "load", ["rss", "0"], "KiB", False, "< 4 MB"),
    ("RSS with 100 idle connections", "load", ["rss", "100"], "KiB", False, ""),
    ("RSS with 1000 idle connections", "load", ["rss", "1000"], "KiB", False, ""),
    ("RSS with 10000 idle connections", "load", ["rss", "10000"], "KiB", False, ""),
    ("RSS per idle authenticated connection (at 1000)", "load", ["rss", "per_connection_kib_at_1000"], "KiB", False, "< 8 KiB"),
    ("token handshakes/s, sequential", "load", ["handshake-seq", "per_second"], "/s", True, ""),
    ("token handshakes/s, 10 concurrent", "load", ["handshake-10", "per_second"], "/s", True, "> 20 000"),
    ("device-signed handshakes/s, sequential", "load", ["device-seq", "per_second"], "/s", True, ""),
    ("device-signed handshakes/s, 10 concurrent", "load", ["device-10", "per_second"], "/s", True, "> 5 000"),
    ("token handshakes per gateway CPU-second, 10 concurrent", "load", ["handshake-10", "per_gateway_cpu_second"], "/s", True, ""),
    ("device-signed handshakes per gateway CPU-second, 10 concurrent", "load", ["device-10", "per_gateway_cpu_second"], "/s", True, ""),
    ("`health` req/s, 1 connection, 1 in flight", "load", ["health-1x1", "per_second"], "/s", True, ""),
    ("`health` req/s, 1 connection, window 32", "load", ["health-1x32", "per_second"], "/s", True, "> 100 000"),
    ("`health` req per gateway CPU-second, 1 connection, window 32", "load", ["health-1x32", "per_gateway_cpu_second"], "/s", True, ""),
    ("`health` req/s, 10 connections", "load", ["health-10", "per_second"], "/s", True, ""),
    ("`health` req/s, 100 connections", "load", ["health-100", "per_second"], "/s", True, ""),
    ("`health` p50 latency, 1 connection", "load", ["health-1x1", "latency", "p50_ms"], "ms", False, ""),
    ("`health` p50 latency, 10 connections", "load", ["health-10", "latency", "p50_ms"], "ms", False, ""),
    ("`health` p99 latency, 10 connections", "load", ["health-10", "latency", "p99_ms"], "ms", False, "< 1 ms"),
    ("`health` max latency, 10 connections", "load", ["health-10", "latency", "max_ms"], "ms", False, ""),
    ("`health` p99 latency, 100 connections", "load", ["health-100", "latency", "p99_ms"], "ms", False, ""),
]


def median(gw, kind, path):
    values = [v for v in (dig(load(gw, r, kind), path) for r in range(1, runs + 1)) if v is not None]
    return statistics.median(values) if values else None


def fmt(v, unit):
    if v is None:
        return "n/a"
    if unit == "KiB":
        return f"{v / 1024:.1f} MB" if v >= 10240 else f"{v:.1f} KiB" if v < 100 else f"{v:,.0f} KiB"
    if unit == "ms":
        return f"{v:.3f} ms" if v < 10 else f"{v:,.0f} ms"
    return f"{v:,.0f}"


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def mem_total():
    try:
        with open("/proc/meminfo") as f:
            kib = int(f.readline().split()[1])
            return f"{kib / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError):
        return "unknown"


table = {}
for label, kind, path, unit, higher, target in FIGURES:
    table[label] = {gw: median(gw, kind, path) for gw in gateways}

binary = "target/release/clawgate"
size = os.path.getsize(binary) if os.path.exists(binary) else None
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()

lines = []
lines.append("# Benchmarks\n")
lines.append("Clawgate (both runtimes) and the real OpenClaw gateway (`openclaw@2026.9.6`), measured side by side "
             "by the same load tool in one run, on loopback. Figures are medians of "
             f"{runs} runs; the load client shares the machine's cores with the gateway.\n")
lines.append(f"- Machine: {os.cpu_count()} cores ({cpu_model()}), {mem_total()} RAM, {platform.system()} {platform.release()}")
lines.append(f"- Clawgate commit: `{commit}`; release binary: {size / 1e6:.2f} MB" if size else "- Clawgate commit: " + commit)
lines.append("- Reproduce: `scripts/bench-matrix.sh` (writes this file and `benches/ratios.svg`); "
             "one gateway: `target/release/clawgate-bench --url ws://127.0.0.1:PORT --token T --pid PID`\n")
header = "| figure | target | " + " | ".join(gateways)
if "openclaw" in gateways:
    header += " | " + " | ".join(f"{g} / openclaw" for g in gateways if g != "openclaw")
lines.append(header + " |")
lines.append("|" + "---|" * (header.count("|")))
ratios = {}
for label, kind, path, unit, higher, target in FIGURES:
    row = table[label]
    cells = [fmt(row[g], unit) for g in gateways]
    line = f"| {label} | {target} | " + " | ".join(cells)
    if "openclaw" in gateways:
        base = row.get("openclaw")
        for g in gateways:
            if g == "openclaw":
                continue
            v = row.get(g)
            if v is None or not base:
                line += " | n/a"
                continue
            better = (v / base) if higher else (base / v if v else None)
            ratios.setdefault(label, {})[g] = better
            line += f" | {better:,.1f}x better" if better else " | n/a"
    lines.append(line + " |")
lines.append("")
lines.append("\"x better\" is the throughput ratio for rates and the inverse ratio for times and memory.")
lines.append("\"Per gateway CPU-second\" divides the work done by the CPU time the gateway process itself used "
             "(from /proc): with the load client on the same two cores, it is the gateway's own capacity.")
if "openclaw" in gateways:
    lines.append("OpenClaw's RSS is its main process only (its two worker processes come on top).")
lines.append("")
lines.append("![Clawgate / OpenClaw](benches/ratios.svg)\n")

with open("BENCHMARKS.md", "w") as f:
    f.write("\n".join(lines))

# A horizontal bar chart of the main ratios, log scale.
import math

main = [
    "spawn -> first hello-ok",
    "idle RSS",
    "token handshakes/s, 10 concurrent",
    "device-signed handshakes/s, 10 concurrent",
    "`health` req/s, 1 connection, window 32",
    "`health` p99 latency, 10 connections",
]
bars = [(label, ratios.get(label, {}).get("clawgate-smol")) for label in main]
bars = [(l, r) for l, r in bars if r]
width, row_h, left = 760, 34, 330
height = 50 + row_h * len(bars)
max_log = max([math.log10(r) for _, r in bars] + [1])
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="13">',
       f'<text x="10" y="22" font-size="15" font-weight="bold">Clawgate (smol) vs OpenClaw 2026.9.6: how many times better (log scale)</text>']
for i, (label, r) in enumerate(bars):
    y = 40 + i * row_h
    w = max(2, (width - left - 90) * (math.log10(max(r, 1)) / max_log))
    svg.append(f'<text x="10" y="{y + 18}">{label.replace("`", "")}</text>')
    svg.append(f'<rect x="{left}" y="{y + 4}" width="{w:.0f}" height="20" fill="#3b7dd8"/>')
    svg.append(f'<text x="{left + w + 6:.0f}" y="{y + 18}">{r:,.0f}x</text>')
svg.append("</svg>")
os.makedirs("benches", exist_ok=True)
with open("benches/ratios.svg", "w") as f:
    f.write("\n".join(svg) + "\n")
print("\n".join(lines))
