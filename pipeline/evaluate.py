"""Delayed-label performance: a published day's predictions joined with the outcomes that arrived since.

``nightscore evaluate --job J --ds D`` (or the ``evaluate_<job>`` DAG for every day whose outcomes have
matured) reads the day's published predictions, runs the job's outcome query (``evaluation.sql``) for the
same day, joins them on the entity key, and records in ``evaluations``: AUC, log loss, Brier score, the
decision's precision and recall, and calibration by score decile, beside the model's holdout metrics.
The comparisons (AUC drop, log-loss rise, calibration error) get levels from the spec's thresholds; an
alert level emits ``nightscore://performance/<job>`` in Airflow, on which ``train_<job>`` is scheduled.
The AUC comes from SciPy (Mann-Whitney U).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline import db
from pipeline.config import Settings
from pipeline.errors import NightscoreError
from pipeline.jobs import JobSpec

log = logging.getLogger(__name__)
DECILES = 10


def classification_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, Any]:
    """AUC, log loss, Brier score, precision and recall of ``score >= threshold``, and calibration by score
    decile (rows, mean score, outcome rate) with its row-weighted mean gap (``calibration_error``).

    The AUC is SciPy's Mann-Whitney U over the positives' and negatives' scores (ties count half); the rest
    are their one-line definitions. Not scikit-learn: XGBoost imports it whenever it is installed, which
    costs every scoring process about 0.8 s and raced GX's imports on two threads (an import deadlock seen
    in a Celery shard task)."""
    from scipy.stats import mannwhitneyu

    y = np.asarray(y, dtype=np.int8)
    p = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)
    positive = y == 1
    n_pos, n = int(positive.sum()), len(y)
    decided = p >= threshold
    hits = int((decided & positive).sum())
    q = np.clip(p, 1e-15, 1 - 1e-15)
    deciles = calibration_by_decile(y, p)
    rows = max(sum(d["rows"] for d in deciles), 1)

    def r(value: float) -> float:
        return round(float(value), 6)

    return {
        "auc": r(mannwhitneyu(p[positive], p[~positive]).statistic / (n_pos * (n - n_pos))) if 0 < n_pos < n else None,
        "logloss": r(-np.mean(np.where(positive, np.log(q), np.log1p(-q)))) if n else None,
        "brier": r(np.mean((p - y) ** 2)) if n else None,
        "precision": r(hits / int(decided.sum())) if decided.any() else (0.0 if n else None),
        "recall": r(hits / n_pos) if n_pos else (0.0 if n else None),
        "calibration_error": r(sum(d["rows"] * abs(d["mean_score"] - d["outcome_rate"]) for d in deciles) / rows) if deciles else None,
        "calibration": deciles,
    }


def calibration_by_decile(y: np.ndarray, p: np.ndarray) -> list[dict[str, Any]]:
    """Rows split at the scores' deciles: per bin its rows, mean score and observed outcome rate."""
    if len(p) == 0:
        return []
    edges = np.unique(np.quantile(p, np.linspace(0, 1, DECILES + 1)))
    which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, max(len(edges) - 2, 0))
    out = []
    for b in range(max(len(edges) - 1, 1)):
        mask = which == b
        rows = int(mask.sum())
        if rows:
            out.append(
                {
                    "bin": b + 1,
                    "rows": rows,
                    "mean_score": round(float(p[mask].mean()), 6),
                    "outcome_rate": round(float(y[mask].mean()), 6),
                }
            )
    return out


@dataclass
class DayEvaluation:
    job: str
    ds: str
    run_id: str
    model_name: str
    model_version: int
    rows_published: int
    rows_labelled: int
    positives: int
    metrics: dict[str, Any]
    holdout: dict[str, Any]
    levels: dict[str, dict[str, Any]] = field(default_factory=dict)
    level: str = "ok"

    @property
    def alerts(self) -> list[str]:
        return sorted(k for k, v in self.levels.items() if v["level"] == "alert")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "alerts": self.alerts}

    def line(self) -> str:
        m = self.metrics
        auc = f"AUC {m['auc']:.4f}" if m.get("auc") is not None else "AUC n/a"
        hold = f" (holdout {self.holdout['auc']:.4f})" if self.holdout.get("auc") is not None else ""
        return (
            f"{self.job} {self.ds}: {auc}{hold}, log loss {m.get('logloss')}, calibration error {m.get('calibration_error')}, "
            f"precision {m.get('precision')}, recall {m.get('recall')}; {self.rows_labelled:,} of {self.rows_published:,} rows labelled: {self.level}"
        )


def mature_on(spec: JobSpec, ds: date) -> date:
    """The first day on which ``ds``'s outcomes are complete."""
    assert spec.evaluation is not None
    return ds + timedelta(days=spec.evaluation.mature_days)


def _require_evaluation(spec: JobSpec) -> None:
    if spec.evaluation is None:
        raise NightscoreError(
            f"job {spec.name!r} has no evaluation block",
            where=str(spec.spec_path),
            fix="add evaluation: {sql: <outcomes query>.sql, mature_days: N} to the spec (README, 'Delayed labels')",
        )


def evaluate_day(settings: Settings, spec: JobSpec, ds: date, *, today: date | None = None, early: bool = False) -> DayEvaluation:
    """Evaluate the published day ``ds`` of ``spec`` against its outcomes and record it in ``evaluations``."""
    _require_evaluation(spec)
    if today is None:  # the day in progress in the job's time zone (pipeline.schedule's one rule)
        from pipeline.schedule import job_today

        today = job_today(spec.timezone)
    if not early and mature_on(spec, ds) > today:
        raise NightscoreError(
            f"the outcomes of {spec.name} {ds} are not complete before {mature_on(spec, ds)} (evaluation.mature_days = {spec.evaluation.mature_days})",  # type: ignore[union-attr]
            where=str(spec.spec_path),
            fix="evaluate a day that has matured, or pass --early to evaluate on the outcomes known so far",
        )
    eng = db.ready_engine(settings)
    with eng.connect() as conn:
        pred = pd.read_sql(db.query("published_day"), conn, params={"job": spec.name, "ds": ds})
    if pred.empty:
        raise NightscoreError(
            f"{spec.name} {ds} has no published predictions",
            where="predictions",
            fix=f"publish the day first (nightscore score --job {spec.name} --ds {ds}), or pick a published day (nightscore runs --job {spec.name})",
        )
    outcomes = load_outcomes(settings, spec, ds)
    day = pred.merge(outcomes, on="entity_id", how="inner")
    run_id = str(pred["run_id"].iloc[0])
    model_name, model_version = str(pred["model_name"].iloc[0]), int(pred["model_version"].iloc[0])
    y = day["outcome"].to_numpy(dtype=np.int8)
    decided = (day["label"] == spec.decision.positive).to_numpy()
    metrics = classification_metrics(y, day["score"].to_numpy(dtype=np.float64), spec.decision.threshold)
    # the decision as published (score >= threshold at scoring time), which the threshold reproduces
    metrics["decided_positive"] = int(decided.sum())
    holdout = _holdout(eng, model_name, model_version)
    ev = DayEvaluation(
        job=spec.name,
        ds=ds.isoformat(),
        run_id=run_id,
        model_name=model_name,
        model_version=model_version,
        rows_published=len(pred),
        rows_labelled=len(day),
        positives=int(y.sum()),
        metrics=metrics,
        holdout=holdout,
    )
    _grade(spec, ev)
    _record(eng, ev)
    log.info("%s", ev.line())
    if ev.level == "alert":
        _notify(spec, ev)
    return ev


def _notify(spec: JobSpec, ev: DayEvaluation) -> None:
    from pipeline import alerts

    log.warning("performance alert for %s %s: %s", ev.job, ev.ds, ", ".join(ev.alerts))
    alerts.send(
        spec.alerts,
        alerts.Alert(
            job=ev.job,
            ds=ev.ds,
            kind="performance",
            summary="performance below the model's holdout: " + ", ".join(f"{k} {ev.levels[k]['value']}" for k in ev.alerts),
            detail=ev.line(),
            run_id=ev.run_id,
        ),
    )


def load_outcomes(settings: Settings, spec: JobSpec, ds: date) -> pd.DataFrame:
    """The outcome query's rows for ``ds`` as ``entity_id`` (text, as published) and ``outcome`` (0/1);
    rows whose outcome is still unknown (NULL) are left out."""
    assert spec.evaluation is not None
    where = str(spec.spec_dir / spec.evaluation.sql)
    label = spec.outcome_label
    with db.adbc_connect(settings) as conn, conn.cursor() as cur:
        cur.execute(spec.outcomes_sql(ds))
        table = cur.fetch_arrow_table()
    missing = [c for c in (spec.entity_key, label) if c not in table.column_names]
    if missing:
        raise NightscoreError(
            f"the outcome query of job {spec.name!r} lacks columns {missing}", where=where, fix=f"select {spec.entity_key} and {label}"
        )
    col = table.column(label)
    if not (pa.types.is_boolean(col.type) or pa.types.is_integer(col.type) or pa.types.is_floating(col.type)):
        raise NightscoreError(
            f"the outcome column {label!r} is {col.type}, not a boolean or 0/1", where=where, fix=f"select {label} as a boolean or 0/1 number"
        )
    known = pc.is_valid(col)
    table = table.filter(known)
    values = pc.cast(table.column(label), pa.float64()).to_numpy(zero_copy_only=False)
    if len(values) and not np.isin(values, (0.0, 1.0)).all():
        bad = sorted(set(values[~np.isin(values, (0.0, 1.0))].tolist()))[:5]
        raise NightscoreError(f"the outcome column {label!r} holds values other than 0 and 1: {bad}", where=where, fix="map outcomes to 0/1")
    keys = pc.cast(table.column(spec.entity_key), pa.string()).to_numpy(zero_copy_only=False)
    frame = pd.DataFrame({"entity_id": keys, "outcome": values.astype(np.int8)})
    dupes = frame["entity_id"].duplicated()
    if dupes.any():
        raise NightscoreError(
            f"the outcome query returns {int(dupes.sum())} repeated {spec.entity_key} values for {ds} (e.g. {frame['entity_id'][dupes].iloc[0]})",
            where=where,
            fix=f"return one outcome per {spec.entity_key} and day",
        )
    return frame


def _holdout(eng: Any, model_name: str, version: int) -> dict[str, Any]:
    from pipeline import registry

    try:
        return dict(registry.get_version(eng, model_name, version).metrics)
    except NightscoreError:
        return {}


def _grade(spec: JobSpec, ev: DayEvaluation) -> None:
    """Levels of the comparisons with the holdout, from the spec's thresholds."""
    from pipeline.drift import level

    e = spec.evaluation
    assert e is not None
    m, h = ev.metrics, ev.holdout
    compared = {
        "auc_drop": (h["auc"] - m["auc"]) if m.get("auc") is not None and h.get("auc") is not None else None,
        "logloss_rise": (m["logloss"] - h["logloss"]) if m.get("logloss") is not None and h.get("logloss") is not None else None,
        "calibration_error": m.get("calibration_error"),
    }
    limits = {"auc_drop": e.auc_drop, "logloss_rise": e.logloss_rise, "calibration_error": e.calibration_error}
    ev.levels = {k: {"value": None if v is None else round(v, 6), "level": level(v, limits[k])} for k, v in compared.items()}
    if ev.rows_labelled < e.min_labelled:
        ev.level = "insufficient"
        return
    found = {v["level"] for v in ev.levels.values()}
    ev.level = "alert" if "alert" in found else "warn" if "warn" in found else "ok"


def _record(eng: Any, ev: DayEvaluation) -> None:
    m = ev.metrics
    with eng.begin() as conn:
        conn.execute(
            db.query("upsert_evaluation"),
            {
                "job": ev.job,
                "ds": date.fromisoformat(ev.ds),
                "run_id": ev.run_id,
                "model_name": ev.model_name,
                "model_version": ev.model_version,
                "rows_published": ev.rows_published,
                "rows_labelled": ev.rows_labelled,
                "positives": ev.positives,
                "auc": m.get("auc"),
                "logloss": m.get("logloss"),
                "brier": m.get("brier"),
                "decision_precision": m.get("precision"),
                "decision_recall": m.get("recall"),
                "calibration_error": m.get("calibration_error"),
                "calibration": json.dumps(m.get("calibration") or []),
                "holdout": json.dumps(ev.holdout),
                "levels": json.dumps(ev.levels),
                "level": ev.level,
            },
        )


def matured_window(spec: JobSpec, today: date) -> tuple[date, date]:
    """The first and last day whose outcomes have matured by ``today``, within the spec's lookback."""
    assert spec.evaluation is not None
    last = today - timedelta(days=spec.evaluation.mature_days)
    return last - timedelta(days=spec.evaluation.lookback_days - 1), last


def matured_days(settings: Settings, spec: JobSpec, today: date) -> list[date]:
    """Published days whose outcomes have matured by ``today`` (within the spec's lookback) and whose
    published run has not been evaluated yet."""
    _require_evaluation(spec)
    first, last = matured_window(spec, today)
    with db.ready_engine(settings).connect() as conn:
        rows = conn.execute(db.query("unevaluated_days"), {"job": spec.name, "first": first, "last": last}).all()
    return [r.ds for r in rows]


def evaluate_matured(settings: Settings, spec: JobSpec, today: date) -> list[DayEvaluation]:
    """Evaluate every matured, not yet evaluated day (see :func:`matured_days`), oldest first."""
    return [evaluate_day(settings, spec, ds, today=today) for ds in matured_days(settings, spec, today)]


def alert_extra(evaluations: list[DayEvaluation]) -> dict[str, Any] | None:
    """The performance Asset event's ``extra``: the latest day that reached the alert level, or None."""
    hit = [e for e in evaluations if e.level == "alert"]
    if not hit:
        return None
    e = hit[-1]
    return {
        "trigger": "performance",
        "job": e.job,
        "ds": e.ds,
        "run_id": e.run_id,
        "model_name": e.model_name,
        "model_version": e.model_version,
        "alerts": e.alerts,
        "days": [x.ds for x in hit],
    }


def history(eng: Any, job: str, first: date, last: date) -> list[dict[str, Any]]:
    """The evaluations of ``job``'s days ``first``..``last`` (for reports)."""
    with eng.connect() as conn:
        rows = conn.execute(db.query("list_evaluations"), {"j": job, "a": first, "b": last}).mappings()
        return [dict(r) for r in rows]
