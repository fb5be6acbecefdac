"""Reaping: runs whose process is gone are marked ``abandoned`` and their leftovers removed.

A process killed with SIGKILL, a machine that died or a connection that never came back leave a run
``running`` with nobody working on it. :func:`reap` (run by every new run, every CLI command that uses the
database, and ``nightscore runs --reap``)
finds those by their owner and heartbeat, marks them, writes their manifest from the ledger, and removes
what no live run needs: loading tables in ``nightscore_staging`` and work folders under ``NIGHTSCORE_HOME``.
A table or folder of a run that is still alive is never touched, nor, until ``NIGHTSCORE_HANDOVER_TIMEOUT_SECONDS``
has passed, one of a failed Airflow run: a task retry (a shard's, the publish's) takes such a run up again.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine

from pipeline import db, runs
from pipeline.config import Settings
from pipeline.publish import drop_loading_table
from pipeline.storage import open_store, run_prefix

log = logging.getLogger(__name__)
_LOADING = re.compile(r"^(load_([0-9a-f]{12})_[0-9a-f]{12})(?:_reasons|_shadow)?$")  # a loading table, or a side table of one


@dataclass
class Reaped:
    runs: list[dict[str, Any]] = field(default_factory=list)  # run_id, job, ds, status, error
    tables: list[str] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def why_gone(run: Any, settings: Settings, here: str) -> str | None:
    """Why nobody works on ``run`` any more (None while somebody may)."""
    silent = float(run.silent_seconds or 0)
    if run.owner_pid is None:
        if silent > settings.handover_timeout_s:
            return f"no process took the run up for {silent:.0f} s after its last task (NIGHTSCORE_HANDOVER_TIMEOUT_SECONDS)"
        return None
    who = f"process {run.owner_pid} on {run.owner_host}" + (f" ({run.owner_task}, try {run.owner_try})" if run.owner_task else "")
    if run.owner_host == here and not process_alive(run.owner_pid):
        return f"{who} is gone"
    if silent > settings.heartbeat_stale_s:
        return f"{who} has sent no heartbeat for {silent:.0f} s"
    return None


def reap(settings: Settings, eng: Engine | None = None) -> Reaped:
    """Mark runs whose process is gone as abandoned, and remove loading tables and work folders no live run owns."""
    eng = eng or db.ready_engine(settings)
    here = runs.hostname()
    done = Reaped()
    live: set[str] = set()
    with eng.connect() as conn:
        open_runs = conn.execute(db.query("open_runs")).all()
    for run in open_runs:
        why = why_gone(run, settings, here)
        if why is None:
            live.add(str(run.run_id))
            continue
        error = f"[{run.stage or 'run'}] abandoned: {why}" + (
            "; the day was published before that" if run.status == "published" else "; the published data was left as it was"
        )
        with eng.begin() as conn:
            status = conn.execute(
                db.query("abandon_run"),
                {"run_id": str(run.run_id), "error": error, "owner_pid": run.owner_pid, "heartbeat_at": run.heartbeat_at},
            ).scalar()
        if status is None:  # a process claimed it meanwhile
            live.add(str(run.run_id))
            continue
        log.info("run %s (%s %s): %s", run.run_id, run.job, run.ds, error)
        done.runs.append({"run_id": str(run.run_id), "job": run.job, "ds": str(run.ds), "status": status, "error": error})
        _write_manifest(settings, eng, str(run.run_id))
        runs.end_open_shards(eng, str(run.run_id), "abandoned")  # the shards still marked at work end with the run
    with eng.connect() as conn:
        live |= {str(r.run_id) for r in conn.execute(db.query("retryable_runs"), {"grace": settings.handover_timeout_s})}
    prefixes = {r.replace("-", "")[:12] for r in live}
    with eng.connect() as conn:
        tables = [r.name for r in conn.execute(db.query("list_loading_tables"))]
    for name in tables:
        m = _LOADING.match(name)
        if m and m.group(2) not in prefixes and m.group(1) not in done.tables:
            drop_loading_table(eng, m.group(1))  # with its side tables
            done.tables.append(m.group(1))
    work = settings.home / "work"
    if work.is_dir():
        for folder in work.iterdir():
            if folder.is_dir() and folder.name not in live and _is_uuid(folder.name):
                shutil.rmtree(folder, ignore_errors=True)
                done.folders.append(str(folder))
    return done


def reap_quietly(settings: Settings, eng: Engine) -> None:
    """:func:`reap` before other work; a problem here is logged and must not stop that work."""
    try:
        reap(settings, eng)
    except Exception as exc:
        log.info("could not reap abandoned runs (%s)", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


def _is_uuid(text: str) -> bool:
    return bool(re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", text))


def _write_manifest(settings: Settings, eng: Engine, run_id: str) -> None:
    """The abandoned run's manifest, from its ledger row (the process that would have written it is gone)."""

    rec = runs.get(eng, run_id)
    if rec is None:
        return
    manifest = {
        "job": rec["job"],
        "ds": str(rec["ds"]),
        "run_id": run_id,
        "airflow_run_id": rec.get("airflow_run_id"),
        "status": rec["status"],
        "error": rec.get("error"),
        "stage": rec.get("stage"),
        "owner": {k: rec.get(f"owner_{k}") for k in ("host", "task", "try")},
        "counts": {k: rec.get(f"rows_{k}") for k in ("extracted", "valid", "quarantined", "scored", "published")},
        "model": {"name": rec.get("model_name"), "version": rec.get("model_version"), "sha256": rec.get("model_sha256")},
        "published_at": rec.get("published_at"),
        "written_by": "reaper",
        "written_at": datetime.now(UTC).isoformat(),
    }
    try:
        store = open_store(settings)
        uri = store.put_bytes(
            f"{run_prefix(rec['job'], str(rec['ds']), run_id)}/manifest.json", json.dumps(manifest, indent=2, default=str).encode()
        )
        runs.update(eng, run_id, manifest_uri=uri)
    except Exception as exc:  # the store may be what failed; the ledger row says it all
        log.info("run %s: manifest not written (%s)", run_id, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
