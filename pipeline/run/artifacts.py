"""What a run leaves behind besides its predictions: the manifest (written last), the day's validation
summary over several shards, the HTML run report, and the drift rows of ``drift_metrics``."""

from __future__ import annotations

import json
import logging
import platform
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pipeline
from pipeline import db, runs
from pipeline.config import Settings
from pipeline.errors import explain
from pipeline.run.state import RunState
from pipeline.storage import ArtifactStore, open_store

if TYPE_CHECKING:
    from pipeline.run.frame import StageContext

log = logging.getLogger(__name__)


def write_manifest(settings: Settings, s: RunState, eng: Any, *, status: str, error: str | None = None) -> str:
    import xgboost

    shard_rows = runs.shards(eng, s.run_id)
    manifest = {
        "job": s.job,
        "ds": s.ds,
        "run_id": s.run_id,
        "airflow_run_id": s.airflow_run_id,
        "status": status,
        "error": error,
        "dry_run": s.dry_run,
        "counts": s.counts,
        "source": _source(settings, s.job),
        "features": {"uri": s.features_uri, "sha256": s.features_sha256},
        "model": {"name": s.model_name, "version": s.model_version, "sha256": s.model_sha256, "pinned": s.pinned_version is not None},
        "shadow_models": s.shadows,  # as resolved when the run began; what became of each: shadow_runs
        "validation_uri": s.validation_uri,
        "data_docs_uri": s.data_docs_uri,
        "predictions_uri": s.predictions_uri,
        "report_uri": s.report_uri,
        "shards": [{k: v for k, v in r.items() if k not in ("run_id", "validation_summary", "error_detail")} for r in shard_rows],
        "drift": s.drift,
        "seconds": s.seconds,
        "versions": {"nightscore": pipeline.__version__, "xgboost": xgboost.__version__, "python": platform.python_version()},
        "written_at": datetime.now(UTC).isoformat(),
    }
    uri = open_store(settings).put_bytes(f"{s.prefix}/manifest.json", json.dumps(manifest, indent=2, default=str).encode())
    runs.update(eng, s.run_id, manifest_uri=uri)
    return uri


def _source(settings: Settings, job: str) -> dict[str, Any] | None:
    """Where the run's rows came from (:func:`pipeline.sources.describe`), or None when the spec is gone."""
    from pipeline.jobs import load_job
    from pipeline.sources import describe

    try:
        return describe(settings, load_job(settings.jobs_dir, job))
    except Exception:
        return None


def write_day_reports(ctx: StageContext, state: RunState) -> None:
    """For several shards: the day's validation summary and a Data Docs page linking each shard's."""
    rows = runs.shards(ctx.eng, state.run_id)
    report = {
        "shards": state.shards,
        "rows": state.counts["extracted"],
        "rows_quarantined": state.counts["quarantined"],
        "per_shard": [
            {
                "shard": r["shard"],
                "rows": r["rows_extracted"],
                "rows_quarantined": r["rows_quarantined"],
                "validation_uri": r["validation_uri"],
                "data_docs_uri": r["data_docs_uri"],
                "summary": r["validation_summary"],
            }
            for r in rows
        ],
    }
    state.validation_uri = ctx.store.put_bytes(f"{state.prefix}/validation.json", json.dumps(report, indent=2, default=str).encode())
    links = "".join(
        f'<li><a href="{r["data_docs_uri"]}">shard {r["shard"]}</a>: {r["rows_extracted"]} rows, {r["rows_quarantined"]} quarantined</li>'
        for r in rows
    )
    html = f"<!doctype html><title>{state.job} {state.ds}: validation</title><h1>{state.job} {state.ds}: {state.shards} shards</h1><ul>{links}</ul>"
    state.data_docs_uri = ctx.store.put_bytes(f"{state.prefix}/data_docs/index.html", html.encode())
    runs.update(ctx.eng, state.run_id, validation_report_uri=state.validation_uri, data_docs_uri=state.data_docs_uri)


def write_run_report(ctx: StageContext, state: RunState) -> str | None:
    """The run's HTML report (``report.html`` beside its manifest); a report that cannot be drawn is logged,
    and the run goes on: it is a view of the ledger, which has it all."""
    from pipeline.report import run_report

    try:
        html = run_report(ctx.eng, ctx.store, ctx.spec, state, f"{state.prefix}/manifest.json")
    except Exception as exc:
        log.warning("run %s: its HTML report was not written: %s", state.run_id, explain(exc))
        return None
    return ctx.store.put_bytes(f"{state.prefix}/report.html", html.encode())


def record_drift(ctx: StageContext, state: RunState) -> None:
    """One drift_metrics row per feature and metric of the run (replacing an earlier try's)."""
    metrics = (state.drift or {}).pop("metrics", None)
    if not metrics:
        return
    with ctx.eng.begin() as conn:
        conn.execute(db.query("delete_run_drift_metrics"), {"r": state.run_id})
        conn.execute(
            db.query("insert_drift_metric"),
            [{"run_id": state.run_id, "job": state.job, "ds": state.day, **m} for m in metrics],
        )
    state.drift = {**(state.drift or {}), "metrics_rows": len(metrics)}


@contextmanager
def local_files(store: ArtifactStore, uris: list[str]) -> Iterator[list[Path]]:
    from contextlib import ExitStack

    with ExitStack() as stack:
        yield [stack.enter_context(store.local_path(store.key(u))) for u in uris]
