"""Benchmark results of several machines side by side (``make bench-beside FILES="this.json that.json"``).

Each machine runs ``make bench`` (or ``bench/run_bench.py --json FILE``) unchanged; this joins the JSON files
into one table per size: every line's seconds on each machine, then the ratios the targets are stated in,
each taken within its own machine's run (nightscore against the recipe's median and against its serial bare
chain, explanations against the bare predict, the scaling table's speed-up and efficiency). Seconds of two
machines are never divided by each other: only ratios measured in one run compare.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from run_bench import MEASUREMENTS  # noqa: E402  (the bench's own labels and order)


def _machine(data: dict[str, Any], path: Path) -> str:
    m = data.get("machine") or {}
    cpu = f", {m['cpu']}" if m.get("cpu") else ""
    return f"{data.get('cores', '?')} cores{cpu} ({data.get('date', '?')}, {path.name})"


def _scale_lines(results: list[dict[str, Any]]) -> list[str]:
    workers = sorted({int(k.split(":")[1]) for r in results for k in r if k.startswith("scale:")})
    return [f"scale:{w}" for w in workers]


def _ratios(r: dict[str, Any]) -> dict[str, str]:
    """This machine's ratios, each within its own run."""
    out: dict[str, str] = {}
    if "baseline" in r and "nightscore" in r:
        out["nightscore ÷ recipe (target ≥ 12x)"] = f"{r['baseline']['seconds'] / r['nightscore']['seconds']:.1f}x"
    for label, key in (("binary", "nightscore"), ("multiclass", "e2e:multiclass"), ("regression", "e2e:regression")):
        if "vs_bare_chain" in r.get(key, {}):
            out[f"{label} ÷ its serial bare chain (target ≤ 1.0x)"] = f"{r[key]['vs_bare_chain']:.2f}x"
    if {"score:plain", "explain:approx", "bare:predict"} <= set(r):
        extra = (r["explain:approx"]["seconds"] - r["score:plain"]["seconds"]) / r["bare:predict"]["seconds"]
        out["approx explanations ÷ bare predict (target ≤ 1.5x)"] = f"{extra:.2f}x"
    one = r.get("nightscore", {}).get("seconds")
    for key in sorted((k for k in r if k.startswith("scale:")), key=lambda k: int(k.split(":")[1])):
        n = int(key.split(":")[1])
        if one:
            speed = one / r[key]["seconds"]
            out[f"{n} workers: speed-up, efficiency"] = f"{speed:.2f}x, {speed / n:.0%}"
    if "nightscore" in r and "worker_peak_mb" in r["nightscore"]:
        out["peak memory of one worker (MB)"] = f"{r['nightscore']['worker_peak_mb']:,.0f}"
    return out


def table(files: list[Path]) -> str:
    """The markdown tables, one per size that any file has."""
    data = [json.loads(p.read_text()) for p in files]
    heads = [_machine(d, p) for d, p in zip(data, files, strict=True)]
    sizes = sorted({int(n) for d in data for n in d.get("results", {})})
    labels = dict(MEASUREMENTS)
    out: list[str] = []
    for n in sizes:
        per = [d.get("results", {}).get(str(n), {}) for d in data]
        out += [f"### {n:,} rows", "", "| seconds | " + " | ".join(heads) + " |", "|---|" + "---:|" * len(heads)]
        keys = [k for k, _ in MEASUREMENTS if any(k in r for r in per)] + _scale_lines(per)
        for key in keys:
            label = labels.get(key, f"nightscore end to end, {key.split(':')[1]} workers" if key.startswith("scale:") else key)
            cells = [f"{r[key]['seconds']:.2f}" if key in r else "" for r in per]
            out.append(f"| {label.strip()} | " + " | ".join(cells) + " |")
        ratios = [_ratios(r) for r in per]
        names = list(dict.fromkeys(name for rs in ratios for name in rs))
        if names:
            out += ["", "| ratio, within each machine's run | " + " | ".join(heads) + " |", "|---|" + "---:|" * len(heads)]
            out += [f"| {name} | " + " | ".join(rs.get(name, "") for rs in ratios) + " |" for name in names]
        out.append("")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description="make bench results of several machines side by side")
    ap.add_argument("files", nargs="+", type=Path, help="results JSON files of bench/run_bench.py --json")
    args = ap.parse_args()
    missing = [str(p) for p in args.files if not p.is_file()]
    if missing:
        print(f"no such results file: {', '.join(missing)} (make one with: make bench, or bench/run_bench.py --json FILE)", file=sys.stderr)
        return 2
    print(table(args.files))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
