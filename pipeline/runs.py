"""Run records: one ``scoring_runs`` row per attempt, failed ones included."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Engine

from pipeline import db

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
        )
    ),
)
_JSON_COLUMNS = {"validation_summary", "drift"}


def start(eng: Engine, run_id: str, job: str, ds: date, *, dry_run: bool, airflow_run_id: str | None, artifacts_uri: str) -> None:
    with eng.begin() as conn:
        conn.execute(
            db.query("insert_run"),
            {"run_id": run_id, "job": job, "ds": ds, "dry_run": dry_run, "airflow_run_id": airflow_run_id, "artifacts_uri": artifacts_uri},
        )


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


def finish(eng: Engine, run_id: str, status: str, **fields: Any) -> None:
    update(eng, run_id, status=status, finished_at=sa.func.now(), **fields)


def get(eng: Engine, run_id: str) -> dict[str, Any] | None:
    row = db.fetch_one(eng, "get_run", run_id=run_id)
    return dict(row._mapping) if row else None


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
