"""Metrics for the monitoring a team already runs: Prometheus, through a Pushgateway or node-exporter.

After every run (succeeded or failed), every evaluation and every training, from the CLI and from Airflow
alike, the job's metrics are rebuilt from the ledger (so they are right even when an earlier export was
missed) with ``prometheus_client`` and either pushed to the Pushgateway at ``NIGHTSCORE_PUSHGATEWAY_URL``
(group ``job="nightscore", scoring_job="<job>"``, replaced whole each time) or, without one, written as a
node-exporter textfile ``<NIGHTSCORE_METRICS_DIR>/nightscore_<job>.prom`` (default folder ``<home>/metrics``).
``nightscore metrics --job J`` prints the same in OpenMetrics form. A failed export is logged, never fatal.

Prometheus' conventions: one quantity a name, units in the name (``_seconds``, ``_ratio``), ``_total`` for
counters, an ``_info`` metric for the model. Each kind of check shows its **latest result whenever it was
computed**, with the day it concerns in a gauge of its own: the last publish, the last drift judgement (a
backfill of an older day is the latest judgement), the last evaluation (delayed labels always concern older
days). Every metric carries ``scoring_job`` (``job`` is the Pushgateway's own grouping label). The names:
docs/metrics.md.
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
LEVELS = {"ok": 0, "warn": 1, "alert": 2, "insufficient": -1}
STATUS = ("published", "succeeded", "failed", "interrupted", "abandoned", "running")
# the evaluation's metrics: the name each has in the ledger -> its metric name (units as Prometheus wants them)
EVALUATION_NAMES = {
    "auc": "auc",
    "logloss": "logloss",
    "brier": "brier_score",
    "decision_precision": "decision_precision_ratio",
    "decision_recall": "decision_recall_ratio",
    "calibration_error": "calibration_error",
    "accuracy": "accuracy_ratio",
    "macro_f1": "macro_f1",
    "rmse": "rmse",
    "mae": "mae",
    "r2": "r2",
    "pinball": "pinball_loss",
    "coverage": "interval_coverage_ratio",
    "coverage_expected": "interval_coverage_expected_ratio",
}
BINARY_COLUMNS = ("auc", "logloss", "brier", "decision_precision", "decision_recall", "calibration_error")
KIND_METRICS = {
    "multiclass": ("logloss", "accuracy", "macro_f1"),
    "regression": ("rmse", "mae", "r2", "pinball", "coverage", "coverage_expected"),
}
CLASS_METRICS = {"recall": "class_recall_ratio", "share": "class_share_ratio", "predicted_share": "class_predicted_share_ratio"}
# the estimate before labels: its column -> its metric name
ESTIMATE_NAMES = {
    "auc": "estimated_auc",
    "decision_precision": "estimated_precision_ratio",
    "decision_recall": "estimated_recall_ratio",
    "accuracy": "estimated_accuracy_ratio",
    "positive_rate": "estimated_positive_rate_ratio",
}
# drift metric -> its metric name
DRIFT_NAMES = {"psi": "psi", "ks": "ks", "js": "js_distance", "null_rate": "null_rate_change_ratio", "out_of_range": "out_of_range_ratio"}


def job_registry(eng: Any, job: str, spec: Any | None = None) -> Any:
    """A ``CollectorRegistry`` with ``job``'s metrics, read from the ledger (``spec``: for the model's ``_info``)."""
    with eng.connect() as conn:
        facts = {
            "last": conn.execute(db.query("metrics_last_run"), {"job": job}).mappings().first(),
            "publish": conn.execute(db.query("metrics_last_publish"), {"job": job}).mappings().first(),
            "drift": list(conn.execute(db.query("metrics_drift"), {"job": job}).mappings()),
            "evaluation": conn.execute(db.query("metrics_latest_evaluation"), {"job": job}).mappings().first(),
            "estimate": conn.execute(db.query("metrics_latest_estimate"), {"job": job}).mappings().first(),
            "counts": list(conn.execute(db.query("metrics_run_counts"), {"job": job}).mappings()),
            "alerts": list(conn.execute(db.query("count_alerts"), {"job": job}).mappings()),
            "model": (
                conn.execute(db.query("metrics_model"), {"name": spec.model.name, "alias": spec.model.alias}).mappings().first()
                if spec is not None
                else None
            ),
        }
    if spec is not None and facts["model"] is not None:
        facts["model"] = {"model_name": spec.model.name, "alias": spec.model.alias, **facts["model"]}
    return build_registry(job, facts)


def build_registry(job: str, facts: dict[str, Any]) -> Any:
    """The metrics of ``job`` from what the ledger says (``facts``: the rows :func:`job_registry` reads; the
    unit tests give their own)."""
    from prometheus_client import CollectorRegistry, Counter, Gauge, Info, disable_created_metrics

    disable_created_metrics()  # counters rebuilt from the ledger: no _created sample that would move each export
    reg = CollectorRegistry()
    last, pub, drift, evaluation = facts.get("last"), facts.get("publish"), facts.get("drift") or [], facts.get("evaluation")
    model = facts.get("model")

    def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Any:
        return Gauge(name, doc, ("scoring_job", *labels), registry=reg)

    def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Any:
        return Counter(name, doc, ("scoring_job", *labels), registry=reg)

    if model is not None:
        Info("nightscore_model", "The model version the job's alias names now", ("scoring_job",), registry=reg).labels(job).info(
            {"model_name": model["model_name"], "alias": model["alias"], "model_version": str(model["version"]), "kind": str(model["kind"])}
        )
    if pub and pub["published_at"] is not None:
        gauge("nightscore_last_publish_timestamp_seconds", "When a day of the job was last published (Unix time)").labels(job).set(
            pub["published_at"].timestamp()
        )
        gauge("nightscore_last_published_day_timestamp_seconds", "The latest day published: its midnight UTC (Unix time)").labels(job).set(
            _midnight(pub["ds"])
        )
    if last:
        status = gauge(
            "nightscore_last_run_status", "1 for the status the job's latest finished run ended in, 0 for the others", ("status",)
        )
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
    _counters(counter, job, facts.get("counts") or [], facts.get("alerts") or [])
    if drift:
        _drift(gauge, job, drift)
    if evaluation:
        _evaluation(gauge, job, evaluation)
        gauge("nightscore_evaluation_level", "The latest evaluation's level: 0 ok, 1 warn, 2 alert, -1 too few labels").labels(job).set(
            LEVELS.get(evaluation["level"], 0)
        )
        gauge("nightscore_evaluation_day_timestamp_seconds", "The day the latest evaluation concerns: its midnight UTC").labels(job).set(
            _midnight(evaluation["ds"])
        )
        if evaluation.get("evaluated_at") is not None:
            gauge("nightscore_evaluation_timestamp_seconds", "When the latest evaluation was computed (Unix time)").labels(job).set(
                evaluation["evaluated_at"].timestamp()
            )
    if facts.get("estimate"):
        _estimate(gauge, job, facts["estimate"])
    return reg


def _estimate(gauge: Any, job: str, est: Any) -> None:
    """The latest estimate before labels (binary, :mod:`pipeline.estimate`): its metrics, level, whether its
    model was calibrated on the holdout, the day it concerns, and the AUC error of the latest reconciled one."""
    for column, name in ESTIMATE_NAMES.items():
        if _number(est.get(column)):
            doc = f"The latest estimate's {column.replace('_', ' ')} from the day's scores alone"
            gauge(f"nightscore_{name}", doc).labels(job).set(est[column])
    values = {
        "level": (LEVELS.get(est["level"], 0), "The latest estimate's level against the holdout AUC: 0 ok, 1 warn, 2 alert"),
        "day_timestamp_seconds": (_midnight(est["ds"]), "The day the latest estimate concerns: its midnight UTC"),
        "timestamp_seconds": (est["estimated_at"].timestamp(), "When the latest estimate was computed (Unix time)"),
    }
    if est.get("calibrated") is not None:
        values["calibrated"] = (1 if est["calibrated"] else 0, "1 when the latest estimate's model was calibrated on its holdout, else 0")
    if _number(est.get("latest_auc_error")):
        values["auc_error"] = (est["latest_auc_error"], "The latest reconciled estimate's AUC minus the realized AUC")
    for name, (value, doc) in values.items():
        gauge(f"nightscore_estimate_{name}", doc).labels(job).set(value)


def _counters(counter: Any, job: str, counts: list[Any], raised: list[Any]) -> None:
    """Runs by outcome, rows scored, quarantined and published, alerts by kind and level (raised; and sent)."""
    runs = counter("nightscore_runs", "Finished runs of the job (not dry runs), by the status they ended in", ("status",))
    totals = {"scored": 0, "quarantined": 0, "published": 0}
    for row in counts:
        runs.labels(job, row["status"]).inc(int(row["runs"]))
        for k in totals:
            totals[k] += int(row[k] or 0)
    for k, doc in (("scored", "scored"), ("quarantined", "quarantined by validation"), ("published", "published")):
        counter(f"nightscore_rows_{k}", f"Rows {doc}, over every finished run of the job").labels(job).inc(totals[k])
    alerts = counter(
        "nightscore_alerts", "Alerts raised for the job (sent or held back by its alert rules), by kind and level", ("kind", "level")
    )
    sent = counter("nightscore_alerts_sent", "Alerts sent to the job's channels, by kind and level", ("kind", "level"))
    for row in raised:
        alerts.labels(job, row["kind"], row["level"]).inc(int(row["n"]))
        if row["sent"]:
            sent.labels(job, row["kind"], row["level"]).inc(int(row["n"]))


def _drift(gauge: Any, job: str, drift: list[Any]) -> None:
    """The latest drift judgement: each metric under its own name per feature (or the score), its worst level,
    the day it concerns and when it was made."""
    by_metric: dict[str, Any] = {}
    for d in drift:
        name = DRIFT_NAMES.get(d["metric"])
        if name is None or d["value"] is None:
            continue
        if name not in by_metric:
            by_metric[name] = gauge(
                f"nightscore_drift_{name}", f"The latest drift judgement's {d['metric']}, per feature (or score)", ("feature",)
            )
        by_metric[name].labels(job, d["feature"]).set(d["value"])
    worst = max(LEVELS.get(d["level"], 0) for d in drift)
    gauge("nightscore_drift_level", "The latest drift judgement's worst level: 0 ok, 1 warn, 2 alert").labels(job).set(worst)
    gauge("nightscore_drift_day_timestamp_seconds", "The day the latest drift judgement concerns: its midnight UTC").labels(job).set(
        _midnight(drift[0]["ds"])
    )
    gauge("nightscore_drift_timestamp_seconds", "When the latest drift judgement was made (Unix time)").labels(job).set(
        drift[0]["finished_at"].timestamp()
    )


def _evaluation(gauge: Any, job: str, evaluation: Any) -> None:
    """The latest evaluation's metrics by kind (binary from its columns), each under its own name; per class
    (multiclass); and each comparison with the holdout (``..._drop``, ``..._rise``)."""
    kind = evaluation.get("kind") or "binary"
    metrics = evaluation.get("metrics") or {}
    if kind == "binary":
        values = {m: evaluation.get(m) for m in BINARY_COLUMNS}
    else:
        values = {m: metrics.get(m) for m in KIND_METRICS.get(kind, ())}
    done: set[str] = set()
    for name, value in values.items():
        if _number(value):
            metric = f"nightscore_evaluation_{EVALUATION_NAMES[name]}"
            gauge(metric, f"The latest evaluation's {name} on the day's delayed outcomes").labels(job).set(value)
            done.add(metric)
    if kind == "multiclass":
        for name, metric_name in CLASS_METRICS.items():
            per_class = gauge(f"nightscore_evaluation_{metric_name}", f"The latest evaluation's per-class {name}", ("class",))
            for cls, value in (metrics.get(name) or {}).items():
                if _number(value):
                    per_class.labels(job, cls).set(value)
    for name, entry in sorted((evaluation.get("levels") or {}).items()):
        metric = f"nightscore_evaluation_{name}"
        if metric in done or not (isinstance(entry, dict) and _number(entry.get("value"))):
            continue  # calibration_error is a metric and its own comparison: once
        gauge(metric, f"The latest evaluation's {name.replace('_', ' ')} against the model's holdout").labels(job).set(entry["value"])


def _number(value: Any) -> bool:
    return as_number(value) is not None


def _midnight(day: Any) -> float:
    from datetime import UTC, datetime, time

    return datetime.combine(day, time(0), tzinfo=UTC).timestamp()


def textfile_path(settings: Settings, job: str) -> Path:
    return (settings.metrics_dir or settings.home / "metrics") / f"nightscore_{job}.prom"


def _spec(settings: Settings, job: str) -> Any | None:
    from pipeline.jobs import load_job

    try:
        return load_job(settings.jobs_dir, job)
    except Exception:  # a job whose spec is gone still has its ledger's metrics
        return None


def export(settings: Settings, job: str, eng: Any | None = None) -> str | None:
    """Push ``job``'s metrics to the Pushgateway, or write its textfile; return where they went (None on failure)."""
    from prometheus_client import push_to_gateway, write_to_textfile

    try:
        reg = job_registry(eng if eng is not None else db.engine(settings), job, _spec(settings, job))
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


def openmetrics(eng: Any, job: str, spec: Any | None = None) -> str:
    """``job``'s metrics in OpenMetrics text form."""
    from prometheus_client.openmetrics.exposition import generate_latest

    return generate_latest(job_registry(eng, job, spec)).decode()
