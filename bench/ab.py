"""A/B of nightscore end to end against an earlier commit, in one run: ``python bench/ab.py --base REF``.

For a change meant to keep performance (a refactor), the question is "within noise of before?", and two
benchmark runs minutes apart differ by more than that. So both trees score the same 1,000,000-row day
(``bench/run_bench.py``'s job, data, model and server) in alternating fresh processes, ABBA..., and the
medians are compared. REF is checked out in a temporary git worktree; its ``pipeline`` is put first on
``PYTHONPATH``. Only the ``nightscore`` measurement (``pipeline.run.score_partition``) is taken, by each
tree's own ``bench/run_bench.py`` (its ``child``, after its ``PRELOAD`` imports, as ``make bench`` does).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHILD = """
import importlib, json, sys, warnings
from pathlib import Path
sys.path.insert(0, {tree!r})
warnings.filterwarnings("ignore")
from bench import run_bench as rb
for module in rb.PRELOAD:  # imported before the clock, as the benchmark's forkserver does
    importlib.import_module(module)
home = Path({home!r})
rb.settle(rb.bench_settings(home))
out = rb.child("nightscore", {rows}, home, home / "ab-state.json")
print(json.dumps({{"seconds": out["seconds"], "published": out["written"]}}))
"""


def measure(tree: Path, home: Path, rows: int, env: dict[str, str]) -> float:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD.format(tree=str(tree), home=str(home), rows=rows)],
        cwd=tree,
        env={**env, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{tree}: the run failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    if out["published"] != rows:
        raise SystemExit(f"{tree}: published {out['published']} of {rows} rows")
    return float(out["seconds"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, help="the commit to compare against (e.g. HEAD~3)")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=5, help="runs of each tree (alternating)")
    ap.add_argument("--home", type=Path, default=ROOT / ".nightscore" / "bench")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    home = args.home.resolve()

    from bench import run_bench as rb

    settings = rb.bench_settings(home)
    rb.write_job(settings.jobs_dir)
    from pipeline import db

    db.ready_engine(settings)
    rb.ensure_source(settings, [args.rows])
    rb.ensure_model(settings)
    env = {**os.environ, "NIGHTSCORE_DATABASE_URL": settings.database_url}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base), args.base], check=True, capture_output=True)
        try:
            seconds: dict[str, list[float]] = {"base": [], "head": []}
            for i in range(args.repeats):
                pair = [("base", base), ("head", ROOT)]
                for name, tree in pair if i % 2 == 0 else reversed(pair):
                    seconds[name].append(measure(tree, home, args.rows, env))
                    print(f"  {name} {seconds[name][-1]:.2f} s", flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], capture_output=True)
    med = {k: statistics.median(v) for k, v in seconds.items()}
    spread = {k: (min(v), max(v)) for k, v in seconds.items()}
    print(
        f"{args.rows:,} rows, {args.repeats} runs each, alternating: base {args.base} median {med['base']:.2f} s "
        f"({spread['base'][0]:.2f}-{spread['base'][1]:.2f}), head median {med['head']:.2f} s "
        f"({spread['head'][0]:.2f}-{spread['head'][1]:.2f}); head/base {med['head'] / med['base']:.3f}"
    )
    if args.json:
        args.json.write_text(json.dumps({"base": args.base, "rows": args.rows, "seconds": seconds, "median": med}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
