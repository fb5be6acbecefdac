"""Typed per-job views: ``predictions_<job>``, the job's predictions with its key's own columns and types.

``predictions.entity_id`` is text for every job (one table, one primary key). An application joins on its
own key types instead: ``SELECT score FROM predictions_churn WHERE customer_id = 42``, or
``... FROM predictions_demand d JOIN stock s USING (store_id, sku)``. The view casts the text key back
(a key of several columns split as :mod:`pipeline.keys` joined it), then score, label, scores, model and day.

The key's types come from the source itself (the Arrow schema of what it returns): each run records them,
and ``nightscore init`` probes each job's source for them. The database function ``nightscore_job_view``
(sql/migrations/013) replaces the view only when they change, and grants it to ``nightscore_reader``.
Nothing drops a view automatically (a job whose spec is deleted keeps its view and its rows).
"""

from __future__ import annotations

import json
import logging
from datetime import date

import pyarrow as pa
from sqlalchemy.engine import Engine

from pipeline import db, keys
from pipeline.config import Settings
from pipeline.jobs import JobSpec

log = logging.getLogger(__name__)


def view_name(job: str) -> str:
    return f"predictions_{job}"


def ensure_job_view(eng: Engine, spec: JobSpec, schema: pa.Schema) -> bool:
    """Create or update the job's typed view for the key types in ``schema`` (the source's); True if it
    changed. Never raises: a view that cannot be made is logged, and the day's run goes on."""
    columns = keys.key_types(schema, spec.key_columns)
    if len(columns) != len(spec.key_columns):
        return False
    try:
        with eng.begin() as conn:
            changed = bool(conn.execute(db.query("ensure_job_view"), {"job": spec.name, "columns": json.dumps(columns)}).scalar())
    except Exception as exc:
        log.warning(
            "the typed view %s of job %s could not be made (%s); the predictions are published as usual",
            view_name(spec.name),
            spec.name,
            str(exc).strip().splitlines()[0],
        )
        return False
    if changed:
        log.info("view %s: %s", view_name(spec.name), ", ".join(f"{c['name']} {c['type']}" for c in columns))
    return changed


def source_schema(settings: Settings, spec: JobSpec, ds: date) -> pa.Schema | None:
    """The schema the job's source gives for ``ds`` (its first batch read, no more), or None if it cannot be read."""
    from pipeline.sources import open_source

    try:
        with open_source(settings, spec, ds, batch_rows=1, limit=0) as stream:
            return stream.schema
    except Exception as exc:
        log.info("job %s: source not readable for its view (%s)", spec.name, str(exc).strip().splitlines()[0])
        return None


def ensure_views(settings: Settings, specs: list[JobSpec]) -> dict[str, str]:
    """``nightscore init``: every job's view, from its source's schema for the job's latest complete day.
    Returns job -> what happened."""
    from pipeline.schedule import default_day

    eng = db.ready_engine(settings)
    out: dict[str, str] = {}
    for spec in specs:
        schema = source_schema(settings, spec, default_day(spec.timezone))
        if schema is None:
            out[spec.name] = "source not readable now: the job's first run creates the view"
            continue
        changed = ensure_job_view(eng, spec, schema)
        types = ", ".join(f"{c['name']} {c['type']}" for c in keys.key_types(schema, spec.key_columns))
        out[spec.name] = f"{view_name(spec.name)} ({types})" + (" created or updated" if changed else " up to date")
    return out
