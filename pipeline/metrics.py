"""Metrics for the monitoring a team already runs: Prometheus, through a Pushgateway or node-exporter.

After every run (succeeded or failed) and every evaluation, the job's metrics are rebuilt from the ledger
(so they are right even when an earlier export was missed) with ``prometheus_client`` and either pushed to
the Pushgateway at ``NIGHTSCORE_PUSHGATEWAY_URL`` (group ``job="nightscore", scoring_job="<job>"``, replaced
whole each time) or, without one, written as a node-exporter textfile ``<NIGHTSCORE_METRICS_DIR>/nightscore_<job>.prom``
(default folder ``<home>/metrics``; point node-exporter's ``--collector.textfile.directory`` at it).
``nightscore metrics --job J`` prints the same in OpenMetrics form. A failed export is logged, never fatal.

Every metric carries ``scoring_job`` (``job`` is the Pushgateway's own grouping label). The latest
evaluation's metrics are ``nightscore_evaluation_value{metric=...}`` for every kind: binary ``auc``,
``logloss``, ``brier``, ``decision_precision``, ``decision_recall``, ``calibration_error``; multiclass
``logloss``, ``accuracy``, ``macro_f1``; regression ``rmse``, ``mae``, ``r2`` and, for quantile models,
``pinball``, ``coverage``, ``coverage_expected``. Per class (multiclass): ``nightscore_evaluation_class_value
{class=..., metric="recall"|"share"|"predicted_share"}``; per comparison with the holdout:
``nightscore_evaluation_comparison{comparison="auc_drop"|"rmse_rise"|...}``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pipeline import db
from pipeline.config import Settings
from pipeline.errors import redact
from pipeline.kinds import as_number

log = logging.getLogger(__name__)
OUTCOMES = ("extracted", "valid", "quarantined", "scored", "published")
BINARY_COLUMNS = ("auc", "logloss", "brier", "decision_precision", "decision_recall", "calibration_error")
KIND_METRICS = {
    "multiclass": ("logloss", "accuracy", "macro_f1"),
    "regression": ("rmse", "mae", "r2", "pinball", "coverage", "coverage_expected"),
}
CLASS_METRICS = ("recall", "share", "predicted_share")
LEVELS = {"ok": 0, "warn": 1, "alert": 2, "insufficient": -1}
STATUS = ("published", "succeeded", "failed", "interrupted", "abandoned", "running")


def job_registry(eng: Any, job: str) -> Any:
    """A ``CollectorRegistry`` with ``job``'s metrics, read from the ledger."""
    from prometheus_client import CollectorRegistry, Gauge

    reg = CollectorRegistry()
    with eng.connect() as conn:
        last = conn.execute(db.query("metrics_last_run"), {"job": job}).mappings().first()
        pub = conn.execute(db.query("metrics_last_publish"), {"job": job}).mappings().first()
        drift = list(conn.execute(db.query("metrics_drift"), {"job": job}).mappings())
        evaluation = conn.execute(db.query("get_latest_evaluation"), {"job": job}).mappings().first()

    def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Any:
        return Gauge(name, doc, ("scoring_job", *labels), registry=reg)

    if pub and pub["published_at"] is not None:
        gauge("nightscore_last_publish_timestamp_seconds", "When a day of the job was last published (Unix time)").labels(job).set(
            pub["published_at"].timestamp()
        )
        gauge("nightscore_last_published_day_timestamp_seconds", "The latest day published: its midnight UTC (Unix time)").labels(job).set(
            _midnight(pub["ds"])
        )
    if last:
        status = gauge("nightscore_last_run_status", "1 for the status the job's latest finished run ended in, 0 for the others", ("status",))
        for s in STATUS:
            status.labels(job, s).set(1 if last["status"] == s else 0)
        gauge("nightscore_last_run_timestamp_seconds", "When the job's latest finished run ended (Unix time)").labels(job).set(
            last["finished_at"].timestamp()
        )
        rows = gauge("nightscore_last_run_rows", "Rows of the job's latest finished run, by outcome", ("outcome",))
        for o in OUTCOMES:
            value = last[f"rows_{o}"]
            if value is not None:
                rows.labels(job, o).set(value)
        stage = gauge("nightscore_last_run_stage_seconds", "Seconds each stage of the job's latest finished run took", ("stage",))
        for name, secs in sorted((last["stage_seconds"] or {}).items()):
            stage.labels(job, name).set(float(secs))
    if drift:
        value = gauge("nightscore_drift_value", "Drift of the latest published day, per feature (or score) and metric", ("feature", "metric"))
        for d in drift:
            if d["value"] is not None:
                value.labels(job, d["feature"], d["metric"]).set(d["value"])
        worst = max(LEVELS.get(d["level"], 0) for d in drift)
        gauge("nightscore_drift_level", "The latest published day's worst drift level: 0 ok, 1 warn, 2 alert").labels(job).set(worst)
    if evaluation:
        _evaluation(gauge, job, evaluation)
        gauge("nightscore_evaluation_level", "The latest evaluation's level: 0 ok, 1 warn, 2 alert, -1 too few labels").labels(job).set(
            LEVELS.get(evaluation["level"], 0)
        )
        gauge("nightscore_evaluation_day_timestamp_seconds", "The latest evaluated day: its midnight UTC (Unix time)").labels(job).set(
            _midnight(evaluation["ds"])
        )
    return reg


def _evaluation(gauge: Any, job: str, evaluation: Any) -> None:
    """The latest evaluation's metrics by kind (binary from its columns, as before kinds) and its comparisons with the holdout."""
    kind = evaluation.get("kind") or "binary"
    metrics = evaluation.get("metrics") or {}
    perf = gauge("nightscore_evaluation_value", "The latest evaluated day's metric on its delayed outcomes", ("metric",))
    if kind == "binary":
        values = {m: evaluation[m] for m in BINARY_COLUMNS}
    else:
        values = {m: metrics.get(m) for m in KIND_METRICS.get(kind, ())}
    for name, value in values.items():
        if _number(value):
            perf.labels(job, name).set(value)
    if kind == "multiclass":
        per_class = gauge("nightscore_evaluation_class_value", "The latest evaluated day's per-class metric (multiclass)", ("class", "metric"))
        for name in CLASS_METRICS:
            for cls, value in (metrics.get(name) or {}).items():
                if _number(value):
                    per_class.labels(job, cls, name).set(value)
    compared = gauge("nightscore_evaluation_comparison", "The latest evaluated day against the model's holdout, per comparison", ("comparison",))
    for name, entry in sorted((evaluation.get("levels") or {}).items()):
        if isinstance(entry, dict) and _number(entry.get("value")):
            compared.labels(job, name).set(entry["value"])


def _number(value: Any) -> bool:
    return as_number(value) is not None


def _midnight(day: Any) -> float:
    from datetime import UTC, datetime, time

    return datetime.combine(day, time(0), tzinfo=UTC).timestamp()


def textfile_path(settings: Settings, job: str) -> Path:
    return (settings.metrics_dir or settings.home / "metrics") / f"nightscore_{job}.prom"


def export(settings: Settings, job: str, eng: Any | None = None) -> str | None:
    """Push ``job``'s metrics to the Pushgateway, or write its textfile; return where they went (None on failure)."""
    from prometheus_client import push_to_gateway, write_to_textfile

    try:
        reg = job_registry(eng if eng is not None else db.engine(settings), job)
        if settings.pushgateway_url:
            push_to_gateway(settings.pushgateway_url, job="nightscore", grouping_key={"scoring_job": job}, registry=reg, timeout=10)
            return settings.pushgateway_url
        path = textfile_path(settings, job)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_to_textfile(str(path), reg)  # written beside and renamed: node-exporter never reads half a file
        return str(path)
    except Exception as exc:  # metrics are news about the run, never its outcome
        log.warning("metrics of %s not exported: %s", job, redact(str(exc)).splitlines()[0] if str(exc) else type(exc).__name__)
        return None


def openmetrics(eng: Any, job: str) -> str:
    """``job``'s metrics in OpenMetrics text form."""
    from prometheus_client.openmetrics.exposition import generate_latest

    return generate_latest(job_registry(eng, job)).decode()
