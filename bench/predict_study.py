"""The cheapest exact predict (issue #29): the benchmark model on the benchmark day's rows, predicted by
XGBoost's ``inplace_predict`` at several thread counts and batch sizes, and by the tree runtimes the package
registries carry (Treelite's GTIL interpreter; a model compiled to a shared library by TL2cgen and gcc),
each checked against XGBoost's own scores (largest absolute difference; adopted only at 1e-6 or less).

Run it after ``make bench`` has made the benchmark's data and model (``make bench-predict``: Treelite and
TL2cgen come in through ``uv run --with``, not into the project's environment). Each timing is the median of
``--repeats`` runs, in this one process, one after another."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402
from run_bench import JOB, bench_settings, partition_day  # noqa: E402


def median_seconds(fn: Any, repeats: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> int:
    ap = argparse.ArgumentParser(description="nightscore: the cheapest exact predict (make bench-predict)")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--home", type=Path, default=ROOT / ".nightscore" / "bench")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    import xgboost as xgb

    from pipeline import db, kinds, registry
    from pipeline.features import to_matrix, value_sets
    from pipeline.jobs import load_job
    from pipeline.storage import open_store

    settings = bench_settings(args.home.resolve())
    spec = load_job(settings.jobs_dir, JOB)
    eng = db.ready_engine(settings)
    mv = registry.resolve(eng, spec.model.name, spec.model.alias, None)
    booster = registry.load_booster(open_store(settings), mv)
    info = kinds.model_info(booster)
    with db.adbc_connect(settings) as conn, conn.cursor() as cur:
        cur.execute(spec.source_sql(partition_day(args.rows)))
        table = cur.fetch_arrow_table()
    if table.num_rows != args.rows:
        raise SystemExit(f"the benchmark day of {args.rows:,} rows has {table.num_rows:,}: run make bench ROWS={args.rows} first")
    x = to_matrix(table, spec, coding=value_sets(kinds.coding(spec, info)))
    del table
    cores = os.cpu_count() or 1
    threads = sorted({1, 2, cores})
    print(f"predict study: {args.rows:,} rows, {x.shape[1]} features, model {mv.name} v{mv.version}; {cores} cores; "
          f"Python {platform.python_version()}, XGBoost {xgb.__version__}", flush=True)  # fmt: skip

    booster.set_param({"nthread": cores})
    reference = np.asarray(booster.inplace_predict(x, validate_features=False), dtype=np.float64)
    lines: list[dict[str, Any]] = []

    def line(what: str, n_threads: int, seconds: float, scores: Any, note: str = "") -> None:
        diff = float(np.max(np.abs(np.asarray(scores, dtype=np.float64).reshape(-1) - reference))) if scores is not None else None
        lines.append({"what": what, "threads": n_threads, "seconds": round(seconds, 4), "max_abs_diff": diff, "note": note})
        shown = f"{diff:.2e}" if diff is not None else "n/a"
        print(f"  {what:<44} threads {n_threads:>2}: {seconds:7.3f} s  max |diff| {shown} {note}", flush=True)

    for n in threads:  # XGBoost's inplace_predict, the whole day at once, then in batches
        booster.set_param({"nthread": n})
        for batch in (None, 262_144, 65_536, 16_384):

            def run(batch: int | None = batch) -> Any:
                if batch is None:
                    return booster.inplace_predict(x, validate_features=False)
                return np.concatenate([booster.inplace_predict(x[i : i + batch], validate_features=False) for i in range(0, len(x), batch)])

            seconds, out = median_seconds(run, args.repeats)
            line(f"xgboost inplace_predict, {'whole day' if batch is None else f'batches of {batch:,}'}", n, seconds, out)

    try:
        import treelite
        import treelite.gtil
    except ImportError:
        print("  Treelite is not installed: run this through make bench-predict (uv run --with treelite --with tl2cgen)")
        treelite = None
    if treelite is not None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.json"
            booster.save_model(str(path))
            t0 = time.perf_counter()
            try:
                tl_model = treelite.frontend.load_xgboost_model(str(path))
            except treelite.TreeliteError as exc:
                # Treelite 4.8 refuses a model that stores its categories (XGBoost 3.1+'s encoder). nightscore
                # codes categories itself before predicting (pipeline.features), so the trees alone suffice:
                # the same model without its encoder
                print(f"  treelite: {str(exc).splitlines()[0].split(': ', 1)[-1]}; loading the trees without the encoder")
                model = json.loads(path.read_text())
                model["learner"]["gradient_booster"]["model"].pop("cats", None)
                path.write_text(json.dumps(model))
                tl_model = treelite.frontend.load_xgboost_model(str(path))
            load_s = time.perf_counter() - t0
            for n in threads:
                seconds, out = median_seconds(lambda n=n: treelite.gtil.predict(tl_model, x, nthread=n), args.repeats)
                line("treelite GTIL predict", n, seconds, out, f"(model loaded in {load_s:.2f} s)")
            try:
                import tl2cgen

                lib = Path(tmp) / f"model{'.so' if sys.platform != 'darwin' else '.dylib'}"
                t0 = time.perf_counter()
                tl2cgen.export_lib(tl_model, toolchain="gcc", libpath=str(lib), params={"parallel_comp": cores}, nthread=cores)
                compile_s = time.perf_counter() - t0
                for n in threads:
                    predictor = tl2cgen.Predictor(str(lib), nthread=n)
                    dmat = tl2cgen.DMatrix(x, dtype="float32")
                    seconds, out = median_seconds(lambda p=predictor, d=dmat: p.predict(d), args.repeats)
                    line("tl2cgen compiled model (gcc)", n, seconds, out, f"(compiled in {compile_s:.1f} s)")
            except Exception as exc:  # no compiler, or a model TL2cgen cannot compile
                print(f"  tl2cgen: not measured ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})")

    best = {}
    for n in threads:
        exact = [r for r in lines if r["threads"] == n and r["max_abs_diff"] is not None and r["max_abs_diff"] <= 1e-6]
        pick = min(exact, key=lambda r: r["seconds"])
        base = next(r for r in lines if r["threads"] == n and r["what"].endswith("whole day"))
        best[n] = {
            "fastest_exact": pick["what"],
            "seconds": pick["seconds"],
            "vs_xgboost_whole_day": round(pick["seconds"] / base["seconds"], 3),
        }
        print(f"threads {n}: fastest exact (|diff| ≤ 1e-6) {pick['what']}: {pick['seconds']:.3f} s = {best[n]['vs_xgboost_whole_day']:.2f}x "
              f"XGBoost's whole-day inplace_predict")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({"rows": args.rows, "cores": cores, "lines": lines, "best": best}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
