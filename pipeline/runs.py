"""Run records: one ``scoring_runs`` row per attempt, failed and killed ones included.

Each row names the process working on the run (host, pid, Airflow task and try) and carries a heartbeat
that a thread refreshes while the process works (:func:`owned`). :mod:`pipeline.reap` marks a run whose
process is gone as abandoned.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Engine

from pipeline import config, db
from pipeline.errors import NightscoreError

log = logging.getLogger(__name__)

_TASK: dict[str, Any] = {"task": None, "try": None}


def set_task(task: str | None, try_number: int | None) -> None:
    """Name the Airflow task instance (and try) this process works for; recorded as the runs' owner."""
    _TASK["task"], _TASK["try"] = task, try_number


def hostname() -> str:
    """This machine's name in the ledger: NIGHTSCORE_HOSTNAME (for several workers sharing one machine or
    one container image), else the host name (read by :func:`pipeline.config.ledger_hostname`)."""
    return config.ledger_hostname()


def owner() -> dict[str, Any]:
    """Who is working: this host and process, and the Airflow task instance if any."""
    return {"owner_host": hostname(), "owner_pid": os.getpid(), "owner_task": _TASK["task"], "owner_try": _TASK["try"]}


_RUNS = sa.table(
    "scoring_runs",
    *(
        sa.column(c)
        for c in (
            "run_id",
            "status",
            "model_name",
            "model_version",
            "model_sha256",
            "rows_extracted",
            "rows_valid",
            "rows_quarantined",
            "rows_scored",
            "rows_published",
            "validation_success",
            "validation_summary",
            "validation_report_uri",
            "data_docs_uri",
            "manifest_uri",
            "drift",
            "error",
            "finished_at",
            "stage",
            "shards",
            "loading_table",
        )
    ),
)
_JSON_COLUMNS = {"validation_summary", "drift"}


def start(eng: Engine, run_id: str, job: str, ds: date, *, dry_run: bool, airflow_run_id: str | None, artifacts_uri: str) -> None:
    with eng.begin() as conn:
        conn.execute(
            db.query("insert_run"),
            {
                "run_id": run_id,
                "job": job,
                "ds": ds,
                "dry_run": dry_run,
                "airflow_run_id": airflow_run_id,
                "artifacts_uri": artifacts_uri,
                **owner(),
            },
        )


class _Heartbeat(threading.Thread):
    def __init__(self, eng: Engine, run_id: str, every: float) -> None:
        super().__init__(name=f"nightscore-heartbeat-{run_id[:8]}", daemon=True)
        self.eng, self.run_id, self.every, self.stopped = eng, run_id, every, threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.every):
            heartbeat(self.eng, self.run_id)


def _who_keys() -> dict[str, Any]:
    o = owner()
    return {"owner_host": o["owner_host"], "owner_pid": o["owner_pid"]}


_OWNED: dict[str, _Heartbeat] = {}


@contextmanager
def owned(eng: Engine, run_id: str, stage: str, every: float = 10.0) -> Iterator[str]:
    """This process works on ``run_id`` (in ``stage``): the row names it, a thread keeps its heartbeat.

    Nested use (a stage inside a whole run) only records the stage. In an Airflow task (:func:`set_task`)
    the outermost use releases the run at the end: the next task, in another process, takes it up, and
    meanwhile no process is named. Elsewhere the process stays named, so that if it dies before the run
    is finished the reaper knows at once. Yields the run's status at the claim."""
    status = claim(eng, run_id, stage)
    if run_id in _OWNED:
        yield status
        return
    beat = _OWNED[run_id] = _Heartbeat(eng, run_id, every)
    beat.start()
    try:
        yield status
    finally:
        beat.stopped.set()
        beat.join(30)  # no thread outlives the stage: the shards' worker processes are forked after it
        del _OWNED[run_id]
        if _TASK["task"] is not None:
            try:
                with eng.begin() as conn:
                    conn.execute(db.query("release_run"), {"run_id": run_id, **_who_keys()})
            except Exception as exc:
                log.info("run %s: could not release it (%s); the reaper will", run_id, str(exc).splitlines()[0])


def claim(eng: Engine, run_id: str, stage: str) -> str:
    """This process works on the run (in ``stage``) from now on; returns the run's status at the claim.

    :func:`owned` adds a heartbeat thread; the parent of the shards' worker processes runs no thread (so
    that forking them is safe) and calls :func:`heartbeat` itself."""
    with eng.begin() as conn:
        status = conn.execute(db.query("claim_run"), {"run_id": run_id, "stage": stage, **owner()}).scalar()
    if status is None:
        raise NightscoreError(f"run {run_id} has no scoring_runs row", where="scoring_runs", fix="start the run again")
    return str(status)


def heartbeat(eng: Engine, run_id: str) -> None:
    """Refresh the run's heartbeat (as this process); a failure is logged, never raised: the run itself
    will meet the problem and say so."""
    try:
        with eng.begin() as conn:
            conn.execute(db.query("heartbeat_run"), {"run_id": run_id, **_who_keys()})
    except Exception as exc:
        log.info("run %s: heartbeat not recorded (%s)", run_id, str(exc).splitlines()[0])


_SHARDS = sa.table(
    "run_shards",
    *(
        sa.column(c)
        for c in (
            "run_id",
            "shard",
            "status",
            "stage",
            "rows_extracted",
            "rows_valid",
            "rows_quarantined",
            "rows_scored",
            "rows_loaded",
            "features_uri",
            "features_sha256",
            "validation_uri",
            "data_docs_uri",
            "predictions_uri",
            "validation_summary",
            "seconds",
            "resources",
            "error",
            "error_detail",
            "drift_counts",
            "finished_at",
        )
    ),
)


def plan_shards(eng: Engine, run_id: str, shards: int) -> None:
    """One pending ``run_shards`` row per shard of the run."""
    with eng.begin() as conn:
        conn.execute(db.query("insert_run_shard"), [{"run_id": run_id, "shard": i, "shards": shards} for i in range(shards)])


def claim_shard(eng: Engine, run_id: str, shard: int) -> int:
    """This process works on shard ``shard`` of the run: its attempt number (1 for the first).

    A retry (attempt 2 and later) takes a failed run back to running, unless another of its shards has
    failed too (that one's own retry will): a failed shard fails the day until it is done."""
    with eng.begin() as conn:
        attempt = conn.execute(db.query("claim_shard"), {"run_id": run_id, "shard": shard, **owner()}).scalar()
        if attempt is None:
            raise NightscoreError(f"run {run_id} has no shard {shard}", where="run_shards", fix="start the run again")
        if attempt > 1:
            conn.execute(db.query("revive_run"), {"run_id": run_id, "shard": shard})
    return int(attempt)


def update_shard(eng: Engine, run_id: str, shard: int, seconds: dict[str, float] | None = None, **fields: Any) -> None:
    """Set columns of a shard's row; ``seconds`` are merged into its per-stage timings."""
    values = {
        k: (
            sa.literal(json.loads(json.dumps(v, default=str)), JSONB)
            if k in ("validation_summary", "error_detail", "resources", "drift_counts") and v is not None
            else v
        )
        for k, v in fields.items()
    }
    stmt = sa.update(_SHARDS).where(_SHARDS.c.run_id == sa.cast(sa.literal(run_id), sa.Uuid), _SHARDS.c.shard == shard)
    if seconds:
        values["seconds"] = _SHARDS.c.seconds.op("||")(sa.cast(sa.literal(json.dumps(seconds)), JSONB))
    with eng.begin() as conn:
        conn.execute(stmt.values(**values))


def end_open_shards(eng: Engine, run_id: str, status: str) -> None:
    """The run has ended: its shards still marked at work end with it (``interrupted`` or ``abandoned``)."""
    with eng.begin() as conn:
        conn.execute(db.query("end_open_shards"), {"r": run_id, "status": status})


def shard_status(eng: Engine, run_id: str, shard: int) -> str | None:
    with eng.connect() as conn:
        return conn.execute(db.query("get_shard_status"), {"r": run_id, "s": shard}).scalar()


def shards(eng: Engine, run_id: str) -> list[dict[str, Any]]:
    """The run's shard rows, in shard order."""
    with eng.connect() as conn:
        rows = conn.execute(db.query("list_run_shards"), {"r": run_id})
        return [dict(r._mapping) for r in rows]


def update(eng: Engine, run_id: str, **fields: Any) -> None:
    """Set columns of the run's row (names are checked against the table's columns)."""
    unknown = set(fields) - set(_RUNS.c.keys())
    if unknown:
        raise ValueError(f"unknown scoring_runs columns: {sorted(unknown)}")
    values = {
        # round-trip through json so dates, numpy numbers and the like become plain JSON
        k: (sa.literal(json.loads(json.dumps(v, default=str)), JSONB) if k in _JSON_COLUMNS and v is not None else v)
        for k, v in fields.items()
    }
    stmt = sa.update(_RUNS).where(_RUNS.c.run_id == sa.cast(sa.literal(run_id), sa.Uuid)).values(**values)
    with eng.begin() as conn:
        conn.execute(stmt)


def stage_seconds(eng: Engine, run_id: str, stage: str, seconds: float) -> None:
    with eng.begin() as conn:
        conn.execute(db.query("add_stage_seconds"), {"run_id": run_id, "stage": stage, "seconds": round(seconds, 4)})


def merge_stage_seconds(eng: Engine, run_id: str, seconds: dict[str, float]) -> None:
    """Several stages' seconds in one statement (the shards' stages, at publish)."""
    with eng.begin() as conn:
        conn.execute(db.query("merge_stage_seconds"), {"s": json.dumps(seconds), "r": run_id})


def finish(eng: Engine, run_id: str, status: str, **fields: Any) -> None:
    update(eng, run_id, status=status, finished_at=sa.func.now(), **fields)


def status(eng: Engine, run_id: str) -> str | None:
    with eng.connect() as conn:
        return conn.execute(db.query("get_run_status"), {"r": run_id}).scalar()


def get(eng: Engine, run_id: str) -> dict[str, Any] | None:
    row = db.fetch_one(eng, "get_run", run_id=run_id)
    return dict(row._mapping) if row else None


def find(eng: Engine, prefix: str) -> str:
    """The full id of the run whose id starts with ``prefix`` (at least 4 characters of it)."""
    import re

    cleaned = prefix.strip().lower()
    if not re.fullmatch(r"[0-9a-f-]{4,36}", cleaned):
        raise NightscoreError(
            f"{prefix!r} is not a run id or the start of one",
            where="--show",
            fix="give 4 or more characters of an id from `nightscore runs`",
        )
    with eng.connect() as conn:
        found = [str(r.run_id) for r in conn.execute(db.query("find_runs"), {"prefix": cleaned})]
    if not found:
        raise NightscoreError(f"no run id starts with {cleaned!r}", where="scoring_runs", fix="list runs with `nightscore runs`")
    if len(found) > 1:
        raise NightscoreError(f"more than one run id starts with {cleaned!r}", where="scoring_runs", fix="give more characters of the id")
    return found[0]


def recent(eng: Engine, job: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    with eng.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(db.query("list_runs"), {"job": job, "limit": limit})]


def save_quarantine(
    eng: Engine, run_id: str, job: str, ds: date, quarantined: dict[Any, list[str]], values: dict[Any, list[dict[str, Any]]] | None = None
) -> None:
    """One ``quarantined_rows`` row per refused entity key: every reason, and the row(s) as extracted."""
    if not quarantined:
        return
    values = values or {}
    rows = [
        {
            "run_id": run_id,
            "job": job,
            "ds": ds,
            "entity_id": str(k),
            "reasons": json.dumps(v),
            "row_values": json.dumps(values.get(k), default=str) if k in values else None,
        }
        for k, v in quarantined.items()
    ]
    with eng.begin() as conn:
        conn.execute(db.query("insert_quarantined_row"), rows)
