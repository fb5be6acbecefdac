"""Delayed-label performance: a published day's predictions joined with the outcomes that arrived since.

``nightscore evaluate --job J --ds D`` (or the ``evaluate_<job>`` DAG for every day whose outcomes have
matured) reads the day's published predictions, runs the job's outcome query (``evaluation.sql``) for the
same day, joins them on the entity key, and records in ``evaluations`` the kind's metrics beside the model's
holdout metrics (:mod:`pipeline.evaluate_kinds`: binary AUC, log loss, Brier score, the decision's precision
and recall and calibration by score decile; multiclass log loss, accuracy, macro F1, per-class recall and the
confusion matrix; regression RMSE, MAE, R², and for quantile models pinball loss and coverage). The
comparisons with the holdout get levels from the spec's thresholds; an alert level emits
``nightscore://performance/<job>`` in Airflow, on which ``train_<job>`` is scheduled.
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

from pipeline import db, evaluate_kinds, kinds
from pipeline.config import Settings
from pipeline.errors import NightscoreError
from pipeline.jobs import JobSpec
from pipeline.keys import describe_key, entity_ids

log = logging.getLogger(__name__)


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
    return evaluate_kinds.decile_bins(y, p, "mean_score", "outcome_rate")


@dataclass
class DayEvaluation:
    job: str
    ds: str
    run_id: str
    model_name: str
    model_version: int
    rows_published: int
    rows_labelled: int
    positives: int  # binary: labelled rows whose outcome is positive; 0 for the other kinds
    metrics: dict[str, Any]
    holdout: dict[str, Any]
    levels: dict[str, dict[str, Any]] = field(default_factory=dict)
    level: str = "ok"
    kind: str = "binary"

    @property
    def alerts(self) -> list[str]:
        return sorted(k for k, v in self.levels.items() if v["level"] == "alert")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "alerts": self.alerts}

    def line(self) -> str:
        """The day in one line, by kind: its metrics beside the holdout's, rows labelled, level."""
        from pipeline.evaluate_kinds import summary

        return (
            f"{self.job} {self.ds}: {summary(self.kind, self.metrics, self.holdout)}; "
            f"{self.rows_labelled:,} of {self.rows_published:,} rows labelled: {self.level}"
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
            fix="add evaluation: {sql: <outcomes query>.sql, mature_days: N} to the spec (docs/delayed-labels.md)",
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
    run_id = str(pred["run_id"].iloc[0])
    model_name, model_version = str(pred["model_name"].iloc[0]), int(pred["model_version"].iloc[0])
    holdout = _holdout(eng, spec, model_name, model_version)
    outcomes = load_outcomes(settings, spec, ds)
    day = pred.merge(outcomes, on="entity_id", how="inner")
    y = day["outcome"].to_numpy()
    metrics = evaluate_kinds.day_metrics(spec, day, y, where=f"predictions of {spec.name} {ds} (run {run_id})")
    ev = DayEvaluation(
        job=spec.name,
        ds=ds.isoformat(),
        run_id=run_id,
        model_name=model_name,
        model_version=model_version,
        rows_published=len(pred),
        rows_labelled=len(day),
        positives=int(y.sum()) if spec.model.kind == "binary" else 0,
        metrics=metrics,
        holdout=holdout,
        kind=spec.model.kind,
    )
    ev.levels, ev.level = evaluate_kinds.grade(spec, metrics, holdout, ev.rows_labelled)
    _record(eng, ev)
    log.info("%s", ev.line())
    if ev.level in ("warn", "alert"):
        _notify(eng, spec, ev)
    return ev


def _notify(eng: Any, spec: JobSpec, ev: DayEvaluation) -> None:
    """The day's performance alert (its level: warn or alert), through the job's alert rules."""
    from pipeline import alerts

    assert spec.evaluation is not None
    crossed = [
        alerts.crossing(name, entry["value"], getattr(spec.evaluation, name), entry["level"])
        for name, entry in sorted(ev.levels.items())
        if entry["level"] in ("warn", "alert")
    ]
    if ev.level == "alert":
        log.warning("performance alert for %s %s: %s", ev.job, ev.ds, ", ".join(ev.alerts))
    alerts.route(
        eng,
        spec.alerts,
        alerts.Alert(
            job=ev.job,
            ds=ev.ds,
            kind="performance",
            level=ev.level,
            summary="performance below the model's holdout: " + ", ".join(f"{c['what']} {c['value']}" for c in crossed),
            detail=ev.line(),
            run_id=ev.run_id,
            crossed=crossed,
        ),
    )


def load_outcomes(settings: Settings, spec: JobSpec, ds: date) -> pd.DataFrame:
    """The outcome query's rows for ``ds`` as ``entity_id`` (text, as published) and ``outcome``: 0/1 (binary),
    the class's index in ``decision.classes`` (multiclass: a class name, or its number), the value (regression,
    float64). Rows whose outcome is still unknown (NULL) are left out; an outcome that does not fit the kind is
    refused, naming the values."""
    assert spec.evaluation is not None
    where = str(spec.spec_dir / spec.evaluation.sql)
    label = spec.outcome_label
    from pipeline.sources import read_query

    table = read_query(settings, spec, spec.evaluation.sql, f"the outcome query of job {spec.name!r} for {ds}", ds=ds)
    key_names = ", ".join(spec.key_columns)
    missing = [c for c in (*spec.key_columns, label) if c not in table.column_names]
    if missing:
        raise NightscoreError(
            f"the outcome query of job {spec.name!r} lacks columns {missing}", where=where, fix=f"select {key_names} and {label}"
        )
    col = table.column(label)
    kind = spec.model.kind
    if kind == "binary" and not (pa.types.is_boolean(col.type) or pa.types.is_integer(col.type) or pa.types.is_floating(col.type)):
        raise NightscoreError(
            f"the outcome column {label!r} is {col.type}, not a boolean or 0/1",
            where=where,
            fix=f"select {label} as a boolean or 0/1 number",
        )
    table = table.filter(pc.is_valid(col))
    try:
        values = kinds.encode_labels(table.column(label), spec, what=f"outcome column {label!r}")
    except kinds.LabelError as exc:
        raise NightscoreError(f"job {spec.name!r}, day {ds}: {exc}", where=where, fix=_outcome_fix(spec, label)) from None
    outcome: np.ndarray = values.astype(np.int8 if kind == "binary" else np.int64)
    if kind == "regression":  # the values as they are (encode_labels checked them; float32 is XGBoost's)
        outcome = np.asarray(pc.cast(table.column(label), pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
    keys = entity_ids(table, spec.key_columns).to_numpy(zero_copy_only=False)
    frame = pd.DataFrame({"entity_id": keys, "outcome": outcome})
    dupes = frame["entity_id"].duplicated()
    if dupes.any():
        raise NightscoreError(
            f"the outcome query returns {int(dupes.sum())} repeated keys ({key_names}) for {ds} "
            f"(e.g. {describe_key(frame['entity_id'][dupes].iloc[0], spec.key_columns)})",
            where=where,
            fix=f"return one outcome per {key_names} and day",
        )
    return frame


def _outcome_fix(spec: JobSpec, label: str) -> str:
    if spec.model.kind == "multiclass":
        return (
            f"map the outcomes to decision.classes {list(spec.decision.classes or [])} (or their numbers, 0 = the first); "
            "a class the model does not know needs a model trained with it (add it to decision.classes and train)"
        )
    if spec.model.kind == "regression":
        return f"select {label} as a finite number; leave a row's outcome NULL while it is unknown"
    return f"map outcomes to 0/1 (select {label} as a boolean or 0/1 number)"


def _holdout(eng: Any, spec: JobSpec, model_name: str, version: int) -> dict[str, Any]:
    """The model's metrics to compare the day with: its holdout's, or for a model registered from a file those
    of its reference window (empty when the version is gone from the registry). A day scored by a model of
    another kind than the spec's now is refused: its published columns mean something else."""
    from pipeline import registry

    try:
        mv = registry.get_version(eng, model_name, version)
    except NightscoreError:
        return {}
    if mv.kind != spec.model.kind:
        raise NightscoreError(
            f"{spec.name}: the day was scored by {model_name} v{version}, a {mv.kind} model; the spec's model.kind is now {spec.model.kind}",
            where=str(spec.spec_path),
            fix="score the day again with a model of the spec's kind before evaluating it",
        )
    return dict(mv.metrics or {})


def _record(eng: Any, ev: DayEvaluation) -> None:
    """Upsert the day's row: ``kind`` and ``metrics`` (all the kind's metrics) for every kind, and the binary
    columns (AUC ... calibration) filled for a binary model (NULL for the others)."""
    m = ev.metrics if ev.kind == "binary" else {}
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
                "kind": ev.kind,
                "metrics": json.dumps(ev.metrics),
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
