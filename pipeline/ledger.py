"""The run ledger as the commands read it: the database made ready, dead runs reaped, one run's full record.

Every command that uses the database reaps first (:func:`ready_engine`), so a run whose process is gone never
stays ``running`` for long; ``nightscore runs`` reaps and reports what it found (:func:`open_ledger`).
:func:`run_detail` collects what ``nightscore runs --show`` prints about one run: its ``scoring_runs`` row, its
shards, its manifest read from the artifact store, and the URIs of its reports.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine

from pipeline import db, runs
from pipeline.config import Settings
from pipeline.errors import NightscoreError
from pipeline.reap import Reaped, reap, reap_quietly


def ready_engine(settings: Settings) -> Engine:
    """The database engine, migrated, after reaping the runs whose process is gone (a problem while reaping
    is logged and does not stop the caller's work)."""
    eng = db.ready_engine(settings)
    reap_quietly(settings, eng)
    return eng


def open_ledger(settings: Settings) -> tuple[Engine, Reaped]:
    """The database engine, migrated, and what reaping the runs whose process is gone did (runs marked
    abandoned, loading tables dropped, work folders removed)."""
    eng = db.ready_engine(settings)
    return eng, reap(settings, eng)


@dataclass(frozen=True)
class RunDetail:
    """One run as ``nightscore runs --show`` prints it."""

    run_id: str
    record: dict[str, Any]
    shards: list[dict[str, Any]]
    manifest: dict[str, Any] | None  # None: no manifest written; {"unreadable": why} when it cannot be read
    reports: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The JSON printed: reports, run, shards, manifest."""
        return {"reports": self.reports, "run": self.record, "shards": self.shards, "manifest": self.manifest}


def run_detail(settings: Settings, eng: Engine, prefix: str) -> RunDetail:
    """The run whose id is or starts with ``prefix``: its record, shards, manifest and report URIs."""
    from pipeline.storage import open_store

    run_id = runs.find(eng, prefix)
    rec = runs.get(eng, run_id)
    assert rec is not None
    manifest = None
    if rec.get("manifest_uri"):
        store = open_store(settings)
        try:
            manifest = json.loads(store.get_bytes(store.key(rec["manifest_uri"])))
        except NightscoreError as exc:
            manifest = {"unreadable": str(exc)}
    reports = {
        "artifacts": rec.get("artifacts_uri"),
        "validation_result": rec.get("validation_report_uri"),
        "data_docs": rec.get("data_docs_uri"),
        "manifest": rec.get("manifest_uri"),
        "report": (manifest or {}).get("report_uri"),
    }
    return RunDetail(run_id=run_id, record=rec, shards=runs.shards(eng, run_id), manifest=manifest, reports=reports)
