"""Shadow (challenger) models in a run: resolved when the run begins, scored by each shard on the shard's
own validated rows right after the champion's rows are loaded, published with the day, compared after.

- :func:`plan` (``begin``): each model of ``model.shadow`` (or ``--shadow``) resolves through the registry to
  a version, recorded in ``shadow_runs``; one that does not resolve is recorded ``failed`` for the run, the
  champion's own version (or one asked for twice) ``skipped``. The run's shadow loading table
  ``<loading table>_shadow`` is created beside its loading table.
- :func:`score_shadows` (each shard, after the champion's load): every shadow model scores the shard's
  snapshot less its quarantined keys, exactly as the champion did (:func:`pipeline.score.score`), into the
  shard's work folder, then the artifact store, then the shadow loading table. Any error of a shadow model
  is caught, logged and recorded for the shard; it never fails the shard.
- :func:`settle` (publish, before the swap): a shadow model that did not score every shard of the day, or
  not the champion's row count, has its rows removed and is marked ``failed``; the others ``scored``. The
  swap then publishes ``shadow_predictions`` with the day's predictions, in one transaction.
- :func:`report_rows` (the run report): each shadow model's status and how it compares on the day.

``predictions`` is the same with or without shadow models: they never touch the champion's file or table.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline import db, failpoints, registry
from pipeline.config import Settings
from pipeline.errors import NightscoreError, UsageError, explain

if TYPE_CHECKING:
    from pipeline.jobs import JobSpec
    from pipeline.registry import ModelVersion
    from pipeline.run.state import RunState, ShardState

log = logging.getLogger(__name__)
SIDE = "shadow"


def parse_refs(values: list[str] | None, where: str = "--shadow") -> list[int | str] | None:
    """``--shadow`` values (each an alias or a version number; commas split several) as the spec would hold
    them; None when none was given."""
    from pipeline.jobs.spec import MAX_SHADOWS, shadow_ref

    if not values:
        return None
    refs: list[int | str] = []
    for value in values:
        for part in str(value).split(","):
            if not part.strip():
                continue
            try:
                ref = shadow_ref(part)
            except ValueError as exc:
                raise UsageError(str(exc), where=where, fix="give an alias (challenger) or a version number (3)") from None
            if ref not in refs:
                refs.append(ref)
    if len(refs) > MAX_SHADOWS:
        raise UsageError(f"{len(refs)} shadow models asked for; at most {MAX_SHADOWS}", where=where, fix="name fewer")
    return refs or None


# ---- begin ------------------------------------------------------------------------------------------


def plan(eng: Any, spec: JobSpec, state: RunState, champion: ModelVersion, refs: list[int | str]) -> list[dict[str, Any]]:
    """Resolve the shadow models ``refs`` for the run, record each in ``shadow_runs`` and create the run's
    shadow loading table; return the ones its shards score: ``{requested, name, version, sha256}``."""
    if not refs:
        return []
    planned: list[dict[str, Any]] = []
    seen: dict[int, str] = {}
    rows = []
    for position, ref in enumerate(refs):
        row: dict[str, Any] = {
            "run_id": state.run_id,
            "requested": str(ref),
            "position": position,
            "job": state.job,
            "ds": state.day,
            "model_name": spec.model.name,
            "model_version": None,
            "sha256": None,
            "status": "pending",
            "error": None,
            "note": None,
        }
        try:
            mv = registry.get_version(eng, spec.model.name, ref) if isinstance(ref, int) else registry.resolve(eng, spec.model.name, ref)
        except Exception as exc:
            row.update(status="failed", error=str(explain(exc)))
            log.warning("run %s: shadow model %r not resolved; the day goes on without it: %s", state.run_id, ref, row["error"])
            rows.append(row)
            continue
        row.update(model_version=mv.version, sha256=mv.sha256)
        if mv.version == champion.version:
            row.update(status="skipped", note=f"v{mv.version} is the model the run scores with")
        elif mv.version in seen:
            row.update(status="skipped", note=f"v{mv.version} is asked for already (as {seen[mv.version]})")
        elif state.dry_run or not state.loading_table:
            row.update(status="skipped", note="a dry run publishes nothing")
        else:
            seen[mv.version] = str(ref)
            planned.append({"requested": str(ref), "name": mv.name, "version": mv.version, "sha256": mv.sha256})
        if row["note"]:
            log.info("run %s: shadow model %r skipped: %s", state.run_id, ref, row["note"])
        rows.append(row)
    with eng.begin() as conn:
        conn.execute(db.query("insert_shadow_run"), rows)
    if planned:
        from pipeline.publish import create_side_table

        assert state.loading_table
        create_side_table(eng, state.loading_table, SIDE, state.job, state.day)
    return planned


# ---- each shard -------------------------------------------------------------------------------------


def score_shadows(settings: Settings, state: RunState, shard: ShardState) -> None:
    """Every shadow model of the run on the shard's validated rows, each into the run's shadow loading table;
    called once the champion's rows of the shard are loaded (a retried shard's earlier shadow rows were
    cleared with them). A shadow model's error is recorded, never raised; a signal still ends the run."""
    if not state.shadows or shard.dry_run or not shard.loading_table:
        return
    from pipeline.jobs import load_job
    from pipeline.run.frame import shard_workdir
    from pipeline.storage import open_store

    spec = load_job(settings.jobs_dir, shard.job)
    eng = db.ready_engine(settings)
    store = open_store(settings)
    workdir = shard_workdir(settings, shard).with_name(f"shard-{shard.index:03d}-shadow")
    total = 0.0
    try:
        for s in state.shadows:
            t0, started = time.perf_counter(), time.time()
            detail: dict[str, Any] = {"status": "scored", "attempt": shard.attempt}
            try:
                workdir.mkdir(parents=True, exist_ok=True)
                detail.update(_score_one(settings, spec, eng, store, shard, s, workdir))
            except Exception as exc:  # Interrupted (a signal) is no Exception: it ends the run as ever
                error = explain(exc, stage="shadow scoring", where=f"{shard.where}, shadow {s['name']} v{s['version']}")
                detail.update(status="failed", error=str(error))
                log.warning(
                    "run %s (%s): shadow model %s v%s failed; the day goes on without it: %s",
                    shard.run_id,
                    shard.where,
                    s["name"],
                    s["version"],
                    error,
                )
            detail["seconds"] = round(time.perf_counter() - t0, 4)
            detail["span"] = [round(started, 4), round(time.time(), 4)]
            total += detail["seconds"]
            _record_shard(eng, shard, s, detail)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    try:
        from pipeline import runs

        runs.update_shard(eng, shard.run_id, shard.index, seconds={"shadow": round(total, 4)})
    except Exception as exc:
        log.info("run %s: shadow seconds not recorded (%s)", shard.run_id, str(exc).splitlines()[0])


def _score_one(
    settings: Settings, spec: JobSpec, eng: Any, store: Any, shard: ShardState, s: dict[str, Any], workdir: Path
) -> dict[str, Any]:
    """One shadow model through the shard's rows: scored, loaded, stored. Returns its rows and file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.publish import load_side
    from pipeline.score import score

    assert shard.features_uri and shard.loading_table
    failpoints.reached("shadow")
    clock = [time.perf_counter()]
    mv = registry.get_version(eng, s["name"], int(s["version"]))
    booster = registry.load_booster(store, mv)  # the checksum verified
    registry.check_fits(spec, mv, booster)
    drop: list[Any] = []
    if shard.counts.get("quarantined"):  # the champion scored the snapshot less these keys: so does the shadow
        drop = json.loads(store.get_bytes(f"{shard.prefix}/quarantined_keys.json"))
    out = workdir / f"v{mv.version}.parquet"
    with store.local_path(store.key(shard.features_uri)) as path:
        if drop and len(spec.key_columns) == 1:  # keys were saved as text; match the column's own type
            key_type = pq.ParquetFile(path).schema_arrow.field(spec.key_columns[0]).type
            drop = pa.array(drop).cast(key_type).to_pylist()
        sc = score(
            spec, shard.day, path, booster, mv, shard.run_id, out, threads=settings.threads, batch_rows=settings.batch_rows, drop_keys=drop
        )
    clock.append(time.perf_counter())
    expected = shard.counts.get("loaded", shard.counts.get("scored"))
    if expected is not None and sc.rows != expected:
        raise NightscoreError(
            f"shadow model {mv.name} v{mv.version} scored {sc.rows} rows of the shard, the champion {expected}",
            where=shard.where,
            fix="rerun the day",
        )
    loaded = load_side(settings, out, shard.loading_table, SIDE, shard.index)
    clock.append(time.perf_counter())
    uri = store.put_file(f"{shard.prefix}/shadow/v{mv.version}.parquet", out, move=True)  # for a publish that must load again
    clock.append(time.perf_counter())
    steps = dict(zip(("score", "load", "store"), (round(b - a, 4) for a, b in zip(clock, clock[1:], strict=False)), strict=True))
    return {"rows": int(loaded), "uri": uri, "steps": steps}


def _record_shard(eng: Any, shard: ShardState, s: dict[str, Any], detail: dict[str, Any]) -> None:
    try:
        with eng.begin() as conn:
            conn.execute(
                db.query("record_shadow_shard"),
                {"run_id": shard.run_id, "requested": s["requested"], "shard": shard.index, "detail": json.dumps(detail, default=str)},
            )
    except Exception as exc:  # unrecorded counts as not scored: settle() removes the model's rows
        log.warning("run %s: shadow model v%s of %s not recorded (%s)", shard.run_id, s["version"], shard.where, str(exc).splitlines()[0])


# ---- publish ----------------------------------------------------------------------------------------


def ledger(eng: Any, run_id: str) -> list[dict[str, Any]]:
    """The run's ``shadow_runs`` rows, in the order asked."""
    with eng.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(db.query("list_shadow_runs"), {"run_id": run_id})]


def settle(settings: Settings, eng: Any, store: Any, state: RunState) -> None:
    """Before the swap: each shadow model that scored every shard (the champion's rows, no more, no fewer)
    is marked ``scored``; any other has its rows removed from the shadow loading table and is marked
    ``failed``, and the day is published without it. A loading table made again by a retried publish gets
    the stored shadow files of the ones that scored."""
    if state.dry_run or not state.shadows or not state.loading_table:
        return
    from pipeline.publish import STAGING_SCHEMA, create_side_table, load_side

    table = f"{state.loading_table}_{SIDE}"
    with eng.connect() as conn:
        present = conn.execute(db.query("find_table"), {"t": f'{STAGING_SCHEMA}."{table}"'}).scalar() is not None
    expected = state.counts.get("loaded")
    wanted = {int(s["version"]) for s in state.shadows}
    seconds: list[list[float]] = []
    for row in ledger(eng, state.run_id):
        if row["model_version"] not in wanted or row["status"] == "skipped":
            continue
        parts = row["shards"] or {}
        missing = [i for i in range(state.shards) if (parts.get(str(i)) or {}).get("status") != "scored"]
        rows = sum(int((parts.get(str(i)) or {}).get("rows") or 0) for i in range(state.shards))
        spent = round(sum(float((p or {}).get("seconds") or 0.0) for p in parts.values()), 4)
        seconds += [p["span"] for p in parts.values() if isinstance(p, dict) and p.get("span")]
        error = None
        if missing:
            first = parts.get(str(missing[0])) or {}
            label = f"shard {missing[0]} of {state.shards}" if state.shards > 1 else "the run"
            error = first.get("error") or f"{label} did not score it (its worker ended before it did)"
            if len(missing) > 1:
                error += f" ({len(missing) - 1} more shard(s) without it)"
        elif expected is not None and rows != expected:
            error = f"its shards scored {rows:,} rows, the champion's {expected:,}"
        if error is None and not present:
            try:
                create_side_table(eng, state.loading_table, SIDE, state.job, state.day)
                for i in range(state.shards):
                    with store.local_path(store.key(parts[str(i)]["uri"])) as path:
                        load_side(settings, path, state.loading_table, SIDE, i)
            except Exception as exc:
                error = f"its stored scores could not be loaded again: {explain(exc)}"
        if error is not None:
            with eng.begin() as conn:
                gone = conn.execute(
                    db.query("clear_shadow_version"), {"name": state.loading_table, "version": row["model_version"]}
                ).scalar()
            log.warning(
                "run %s: shadow model %s v%s left out of %s %s (%s rows removed): %s",
                state.run_id,
                row["model_name"],
                row["model_version"],
                state.job,
                state.ds,
                gone,
                error,
            )
        with eng.begin() as conn:
            conn.execute(
                db.query("settle_shadow_run"),
                {
                    "run_id": state.run_id,
                    "requested": row["requested"],
                    "status": "failed" if error else "scored",
                    "rows": rows if not error else None,
                    "seconds": spent,
                    "error": error,
                },
            )
    if seconds:  # the run report's timeline: from the first shard's shadow scoring to the last one's
        state.spans[SIDE] = [min(a for a, _ in seconds), max(b for _, b in seconds)]
        state.seconds[SIDE] = round(state.spans[SIDE][1] - state.spans[SIDE][0], 4)
        from pipeline import runs

        runs.stage_seconds(eng, state.run_id, SIDE, state.seconds[SIDE])


# ---- the run report ---------------------------------------------------------------------------------


def report_rows(eng: Any, spec: JobSpec, state: RunState) -> list[dict[str, Any]]:
    """Each shadow model of the run for its report: what was asked, the version, status, rows and seconds,
    and for a published one how it compares with the champion on the day (:func:`pipeline.compare.day_stats`)."""
    from pipeline.compare import day_stats, load_day

    out = []
    try:
        rows = ledger(eng, state.run_id)
    except Exception as exc:  # the report is a view of the ledger: it goes on without the section
        log.info("run %s: shadow models not listed in the report (%s)", state.run_id, explain(exc))
        return []
    for row in rows:
        entry = {k: row[k] for k in ("requested", "model_name", "model_version", "status", "rows", "seconds", "error", "note")}
        entry["stats"] = {"rows": 0, "agreement": None, "pearson": None, "spearman": None, "psi": None, "flipped": None, "diff": None}
        if row["status"] == "scored" and state.counts.get("published"):
            try:
                day = load_day(eng, state.job, state.day, int(row["model_version"]))
                if day.rows:
                    entry["stats"] = day_stats(day.frame, sample=5)
            except Exception as exc:
                log.info("run %s: shadow v%s not compared for the report (%s)", state.run_id, row["model_version"], explain(exc))
        out.append(entry)
    return out
