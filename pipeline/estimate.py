"""Estimated performance before labels (binary models): what a published day's AUC, precision, recall and
confusion counts are expected to be from its scores alone, long before its outcomes mature.

Confidence-based performance estimation (CBPE, as NannyML describes it; NannyML is not a dependency): if the
model is calibrated, a row scored ``p`` is positive with probability ``p``, so the day's expected confusion
counts are sums of ``p`` and ``1 - p`` over the rows decided positive and negative, and its expected AUC is
the share of (positive, negative) pairs ranked right, each pair weighted by ``p_i (1 - p_j)``. NumPy computes
both in O(n log n) (one sort and cumulative sums).

The estimate holds only as far as the scores are calibrated. At training or registration the model's holdout
is checked (:func:`holdout_checks`, kept in its metrics): its calibration error by score decile, its calibration
map, and how far the holdout's own AUC estimated from its scores misses its realized AUC. A check beyond
``evaluation.estimate`` (:func:`premise`) marks every estimate of that model unreliable (the job report
warns); with ``use_calibration_map: true`` the scores first go through the holdout's monotone calibration map.

Each published day of a binary job with an ``evaluation`` block gets one row in ``performance_estimates``
(:func:`after_publish`, from the run's finish step; ``nightscore estimate`` for days already published); an
estimated AUC at its alert level against the holdout's (``evaluation.auc_drop``) raises a ``performance_estimated``
alert. Once the day is evaluated, ``performance_estimate_errors`` gives each estimate's error.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import db
from pipeline.errors import NightscoreError, first_line
from pipeline.jobs import JobSpec

log = logging.getLogger(__name__)
MAP_BINS = 50  # the calibration map's knots at most: quantile bins of the holdout's scores, then PAV


def _r(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), 6)


# ---- the statistics ---------------------------------------------------------------------------------


def expected_confusion(p: np.ndarray, threshold: float, s: np.ndarray | None = None) -> dict[str, float | None]:
    """The expected confusion counts of the decision ``s >= threshold`` (``s`` the scores, default ``p``) when
    each row is positive with probability ``p``, and the expected precision, recall, accuracy and positive rate.
    Precision without a row decided positive is 0.0, as :func:`pipeline.evaluate.classification_metrics` says."""
    p = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)
    s = p if s is None else np.asarray(s, dtype=np.float64)
    n = len(p)
    decided = s >= threshold
    tp = float(p[decided].sum())
    fp = float(decided.sum()) - tp
    fn = float(p[~decided].sum())
    tn = float((~decided).sum()) - fn
    return {
        "expected_tp": tp,
        "expected_fp": fp,
        "expected_tn": tn,
        "expected_fn": fn,
        "precision": (tp / (tp + fp) if decided.any() else 0.0) if n else None,
        "recall": tp / (tp + fn) if tp + fn > 0 else None,
        "accuracy": (tp + tn) / n if n else None,
        "positive_rate": (tp + fn) / n if n else None,
    }


def expected_auc(p: np.ndarray, s: np.ndarray | None = None) -> float | None:
    """The expected AUC of the scores ``s`` (default ``p``) when row ``i`` is positive with probability ``p_i``:
    ``sum_{i != j} p_i (1 - p_j) ([s_i > s_j] + 0.5 [s_i = s_j]) / sum_{i != j} p_i (1 - p_j)``.

    One sort and cumulative sums over the distinct scores: per score ``P`` (the sum of ``p``) and ``Q`` (of
    ``1 - p``); every pair across two scores counts ``P_hi Q_lo``, the pairs within one score half of
    ``P Q``, less each row paired with itself. None when no pair can be positive against negative."""
    p = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)
    if s is None:  # ranked by p itself: a plain sort (ten times an argsort's speed)
        ps = np.sort(p)
        return sorted_expected_auc(ps, ps)
    order = np.argsort(np.asarray(s, dtype=np.float64))
    return sorted_expected_auc(p[order], np.asarray(s, dtype=np.float64)[order])


def sorted_expected_auc(ps: np.ndarray, ss: np.ndarray) -> float | None:
    """:func:`expected_auc` of rows already in ascending order of their scores ``ss`` (``ps`` in the same order)."""
    if len(ps) < 2:
        return None
    qs = 1.0 - ps
    starts = np.flatnonzero(np.concatenate(([True], ss[1:] != ss[:-1])))
    big_p = np.add.reduceat(ps, starts)
    big_q = np.add.reduceat(qs, starts)
    below = np.cumsum(big_q) - big_q  # 1 - p of the rows scored lower
    self_pairs = float(np.dot(ps, qs))
    pairs = float(big_p.sum()) * float(big_q.sum()) - self_pairs
    if pairs <= 1e-12:
        return None
    right = float(np.dot(big_p, below)) + 0.5 * (float(np.dot(big_p, big_q)) - self_pairs)
    return min(max(right / pairs, 0.0), 1.0)


def calibration_error(y: np.ndarray, p: np.ndarray) -> float | None:
    """Mean ``|mean score - outcome rate|`` over the scores' deciles, weighted by rows: the evaluation's
    ``calibration_error`` (:func:`pipeline.evaluate.calibration_by_decile`)."""
    from pipeline.evaluate import calibration_by_decile

    bins = calibration_by_decile(np.asarray(y, dtype=np.int8), np.asarray(p, dtype=np.float64))
    rows = sum(b["rows"] for b in bins)
    return _r(sum(b["rows"] * abs(b["mean_score"] - b["outcome_rate"]) for b in bins) / rows) if rows else None


def calibration_map(y: np.ndarray, p: np.ndarray, bins: int = MAP_BINS) -> dict[str, list[float]] | None:
    """The holdout's calibration map, score to observed positive rate, monotone: the scores split at up to
    ``bins`` quantiles, each bin's outcome rate made non-decreasing by pool-adjacent-violators (isotonic
    regression over the bins, weighted by rows). Its knots: each bin's mean score and fitted rate, and rows."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    if len(p) == 0:
        return None
    edges = np.unique(np.quantile(p, np.linspace(0, 1, bins + 1)))
    which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, max(len(edges) - 2, 0))
    rows = np.bincount(which, minlength=max(len(edges) - 1, 1)).astype(np.float64)
    keep = rows > 0
    mean = np.bincount(which, weights=p, minlength=len(rows))[keep] / rows[keep]
    rate = np.bincount(which, weights=y, minlength=len(rows))[keep] / rows[keep]
    fitted = pav(rate, rows[keep])
    return {"score": [float(x) for x in mean], "rate": [float(x) for x in fitted], "rows": [int(x) for x in rows[keep]]}


def pav(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Pool adjacent violators: the non-decreasing sequence nearest ``values`` in weighted least squares."""
    blocks: list[list[float]] = []  # [mean, weight, count]
    for v, w in zip(values, weights, strict=True):
        blocks.append([float(v), float(w), 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            v2, w2, c2 = blocks.pop()
            v1, w1, c1 = blocks[-1]
            blocks[-1] = [(v1 * w1 + v2 * w2) / (w1 + w2), w1 + w2, c1 + c2]
    return np.concatenate([np.full(int(c), m) for m, _, c in blocks]) if blocks else np.empty(0)


def apply_map(cmap: dict[str, list[float]], s: np.ndarray) -> np.ndarray:
    """Scores through a :func:`calibration_map` (linear between its knots, flat beyond them)."""
    return np.interp(np.asarray(s, dtype=np.float64), cmap["score"], cmap["rate"])


def holdout_checks(y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    """What a binary model's holdout says about estimating it before labels, kept in its metrics: the
    ``calibration_map``; ``estimate_auc_gap``, the holdout's own expected AUC (from its scores) minus its realized
    AUC; and ``estimate_auc_gap_mapped``, the same through a calibration map, out of sample (the map fit on one
    half of the holdout, the other half estimated through it, both ways, the gaps averaged). A decile
    calibration error near 0 can hide scores sharper than the outcomes (an over-fit model ranks too confidently
    within each decile): the gap shows it."""
    from pipeline.train import auc

    y = np.asarray(y, dtype=np.int8)
    p = np.asarray(p, dtype=np.float64)
    out: dict[str, Any] = {"calibration_map": calibration_map(y, p), "estimate_auc_gap": None, "estimate_auc_gap_mapped": None}
    realized, expected = auc(y, p), expected_auc(p)
    if expected is None or not np.isfinite(realized):
        return out
    out["estimate_auc_gap"] = _r(expected - realized)
    halves = np.array_split(np.random.default_rng(0).permutation(len(p)), 2)
    gaps = []
    for fit, check in ((halves[0], halves[1]), (halves[1], halves[0])):
        cmap, truth = calibration_map(y[fit], p[fit]), auc(y[check], p[check])
        guess = expected_auc(apply_map(cmap, p[check]), p[check]) if cmap else None
        if guess is not None and np.isfinite(truth):
            gaps.append(guess - truth)
    out["estimate_auc_gap_mapped"] = _r(float(np.mean(gaps))) if gaps else None
    return out


def estimate_scores(scores: np.ndarray, threshold: float, cmap: dict[str, list[float]] | None = None) -> dict[str, float | None]:
    """The day's estimated metrics from its scores (through ``cmap`` when given; ranks and the decision stay
    the scores'): ``auc``, ``precision``, ``recall``, ``accuracy``, ``positive_rate`` and the expected counts."""
    s = np.asarray(scores, dtype=np.float64)
    s = np.sort(s[np.isfinite(s)])  # the map is monotone: p comes out in the scores' order, one plain sort serves both
    p = np.clip(apply_map(cmap, s), 0.0, 1.0) if cmap else np.clip(s, 0.0, 1.0)
    out = {"auc": sorted_expected_auc(p, s), **expected_confusion(p, threshold, s)}
    return {k: _r(v) for k, v in out.items()}


# ---- one published day ------------------------------------------------------------------------------


@dataclass
class DayEstimate:
    job: str
    ds: str
    run_id: str
    model_name: str
    model_version: int
    rows: int
    threshold: float
    metrics: dict[str, float | None]  # auc, precision, recall, accuracy, positive_rate, expected_tp/fp/tn/fn
    holdout_auc: float | None
    holdout_calibration_error: float | None
    holdout_auc_gap: float | None  # the holdout's estimated AUC minus its realized one (through the map when used)
    calibrated: bool | None  # the estimate can be trusted by the holdout's checks; None: the model has none
    map_used: bool
    auc_drop: float | None  # the holdout AUC minus the estimated one
    level: str = "ok"
    seconds: float = 0.0
    why: str = ""  # why the estimate is not to be trusted ("" when it is)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        m = self.metrics
        auc = f"estimated AUC {m['auc']:.4f}" if m.get("auc") is not None else "estimated AUC n/a"
        hold = f" (holdout {self.holdout_auc:.4f})" if self.holdout_auc is not None else ""
        return (
            f"{self.job} {self.ds}: {auc}{hold}, precision {m.get('precision')}, recall {m.get('recall')}, "
            f"accuracy {m.get('accuracy')} from {self.rows:,} scores{' (through the holdout calibration map)' if self.map_used else ''}: "
            f"{self.level}{'; unreliable: ' + self.why if self.why else ''}"
        )


def wanted(spec: JobSpec) -> bool:
    """Whether the job's published days get an estimate: a binary model and an evaluation block."""
    return spec.model.kind == "binary" and spec.evaluation is not None


@dataclass(frozen=True)
class Premise:
    """Whether the model's scores can be estimated from, by its holdout's checks (:func:`holdout_checks`)."""

    calibration_error: float | None
    auc_gap: float | None  # the holdout's estimated minus realized AUC, through the map when it is used
    cmap: dict[str, list[float]] | None  # the map the scores go through (None: the scores as they are)
    calibrated: bool | None  # None: the model has no holdout checks to judge by
    why: str  # what failed, for the report and the alert ("" when calibrated)


def premise(spec: JobSpec, holdout: dict[str, Any]) -> Premise:
    """Judge the model's holdout checks by ``evaluation.estimate``: without the map, the calibration error must
    be at most ``calibration_warn`` and the holdout's AUC gap at most ``auc_gap_warn``; with the map (when the
    model has one), the out-of-sample gap through it at most ``auc_gap_warn``. A check the model lacks (a version
    trained before the gap was kept) is not held against it."""
    from pipeline.kinds import as_number

    assert spec.evaluation is not None
    rules = spec.evaluation.estimate
    error = as_number(holdout.get("calibration_error"))
    found = holdout.get("calibration_map")
    cmap = found if rules.use_calibration_map and isinstance(found, dict) and found.get("score") else None
    gap = as_number(holdout.get("estimate_auc_gap_mapped" if cmap else "estimate_auc_gap"))
    if error is None and gap is None:
        return Premise(None, None, cmap, None, "the model has no holdout calibration to judge the estimate by")
    why = []
    if cmap is None and error is not None and error > rules.calibration_warn:
        why.append(f"holdout calibration error {error:.4f} above evaluation.estimate.calibration_warn {rules.calibration_warn}")
    if gap is not None and abs(gap) > rules.auc_gap_warn:
        how = "through the calibration map " if cmap else ""
        why.append(
            f"the holdout's AUC estimated from its scores {how}misses its realized AUC by {gap:+.4f}, "
            f"beyond evaluation.estimate.auc_gap_warn {rules.auc_gap_warn}"
        )
    return Premise(error, gap, cmap, not why, "; ".join(why))


def estimate_day(
    eng: Any, spec: JobSpec, ds: date, run_id: str, model_name: str, model_version: int, scores: np.ndarray, *, notify: bool = True
) -> DayEstimate:
    """Estimate the day from its published ``scores``, record it in ``performance_estimates`` (replacing the
    day's earlier one) and, at warn or alert, route a ``performance_estimated`` alert."""
    from pipeline import registry
    from pipeline.drift import level
    from pipeline.kinds import as_number

    assert spec.evaluation is not None
    t0 = time.perf_counter()
    try:
        holdout = dict(registry.get_version(eng, model_name, model_version).metrics or {})
    except NightscoreError:  # gone from the registry: an estimate without a holdout to compare with
        holdout = {}
    base = premise(spec, holdout)
    metrics = estimate_scores(scores, spec.decision.threshold, base.cmap)
    held_auc = as_number(holdout.get("auc"))
    drop = _r(held_auc - metrics["auc"]) if held_auc is not None and metrics["auc"] is not None else None
    est = DayEstimate(
        job=spec.name,
        ds=ds.isoformat(),
        run_id=run_id,
        model_name=model_name,
        model_version=model_version,
        rows=int(np.isfinite(np.asarray(scores, dtype=np.float64)).sum()),
        threshold=spec.decision.threshold,
        metrics=metrics,
        holdout_auc=held_auc,
        holdout_calibration_error=base.calibration_error,
        holdout_auc_gap=base.auc_gap,
        calibrated=base.calibrated,
        map_used=base.cmap is not None,
        why=base.why,
        auc_drop=drop,
        level=level(drop, spec.evaluation.auc_drop),
    )
    est.seconds = round(time.perf_counter() - t0, 4)
    _record(eng, est)
    log.info("%s", est.line())
    if notify and est.level in ("warn", "alert"):
        _notify(eng, spec, est)
    return est


def _record(eng: Any, est: DayEstimate) -> None:
    m = est.metrics
    with eng.begin() as conn:
        conn.execute(
            db.query("upsert_performance_estimate"),
            {
                "job": est.job,
                "ds": date.fromisoformat(est.ds),
                "run_id": est.run_id,
                "model_name": est.model_name,
                "model_version": est.model_version,
                "rows": est.rows,
                "threshold": est.threshold,
                "auc": m.get("auc"),
                "decision_precision": m.get("precision"),
                "decision_recall": m.get("recall"),
                "accuracy": m.get("accuracy"),
                "positive_rate": m.get("positive_rate"),
                "expected_tp": m.get("expected_tp"),
                "expected_fp": m.get("expected_fp"),
                "expected_tn": m.get("expected_tn"),
                "expected_fn": m.get("expected_fn"),
                "holdout_auc": est.holdout_auc,
                "holdout_calibration_error": est.holdout_calibration_error,
                "holdout_auc_gap": est.holdout_auc_gap,
                "why": est.why or None,
                "calibrated": est.calibrated,
                "map_used": est.map_used,
                "auc_drop": est.auc_drop,
                "level": est.level,
                "seconds": est.seconds,
            },
        )


def _notify(eng: Any, spec: JobSpec, est: DayEstimate) -> None:
    """The day's estimated performance alert (kind ``performance_estimated``: the day's realized alert, once its
    outcomes arrive, is a ``performance`` alert of its own), through the job's alert rules."""
    from pipeline import alerts

    assert spec.evaluation is not None
    crossed = [{**alerts.crossing("estimated auc_drop", est.auc_drop, spec.evaluation.auc_drop, est.level), "estimated": True}]
    caveat = f" Not to be trusted: {est.why}." if est.why else ""
    alerts.route(
        eng,
        spec.alerts,
        alerts.Alert(
            job=est.job,
            ds=est.ds,
            kind="performance_estimated",
            level=est.level,
            summary=f"estimated performance below the model's holdout (estimated from the scores, no outcome known yet): "
            f"estimated AUC {est.metrics['auc']} against {est.holdout_auc}",
            detail=f"{est.line()}.{caveat} Reconciled once evaluated: SELECT * FROM performance_estimate_errors WHERE job = '{est.job}'",
            run_id=est.run_id,
            crossed=crossed,
        ),
    )


def read_scores(paths: list[Path]) -> np.ndarray:
    """The ``score`` column of the run's shards' ``predictions.parquet`` files (local copies), as one array."""
    import pyarrow.parquet as pq

    parts = [pq.read_table(p, columns=["score"]).column("score").to_numpy() for p in paths]
    return np.concatenate(parts).astype(np.float64) if parts else np.empty(0)


def after_publish(eng: Any, spec: JobSpec, state: Any, scores: np.ndarray | None) -> DayEstimate | None:
    """The finish step's estimate of the day just published (its scores as the run's shards wrote them). Never
    raises: an estimate is news about the day, not its outcome."""
    if scores is None or state.dry_run or not wanted(spec) or state.model_name is None or state.model_version is None:
        return None
    try:
        return estimate_day(eng, spec, state.day, state.run_id, state.model_name, int(state.model_version), scores)
    except Exception as exc:
        log.warning("performance of %s %s not estimated: %s", state.job, state.ds, first_line(exc))
        return None


# ---- days already published (nightscore estimate) ---------------------------------------------------


def _require(spec: JobSpec) -> None:
    if spec.model.kind != "binary":
        raise NightscoreError(
            f"job {spec.name!r} has a {spec.model.kind} model: performance is estimated before labels for binary models only",
            where=str(spec.spec_path),
            fix="evaluate the days once their outcomes arrive (nightscore evaluate)",
        )
    if spec.evaluation is None:
        raise NightscoreError(
            f"job {spec.name!r} has no evaluation block: the estimate is compared with the model's holdout by its thresholds",
            where=str(spec.spec_path),
            fix="add evaluation: {sql: <outcomes query>.sql, mature_days: N} to the spec (docs/delayed-labels.md)",
        )


def estimate_published(settings: Any, spec: JobSpec, first: date, last: date | None = None) -> list[DayEstimate]:
    """Estimate each published day of ``spec`` from ``first`` to ``last`` (default: ``first`` alone) from its
    published scores, oldest first, and export the job's metrics. One day asked for and not published: refused."""
    _require(spec)
    last = last or first
    eng = db.ready_engine(settings)
    with eng.connect() as conn:
        days = [dict(r._mapping) for r in conn.execute(db.query("published_days"), {"job": spec.name, "first": first, "last": last})]
    if not days and first == last:
        raise NightscoreError(
            f"{spec.name} {first} has no published predictions",
            where="predictions",
            fix=f"publish the day first (nightscore score --job {spec.name} --ds {first}), or pick a published day (nightscore runs --job {spec.name})",
        )
    found = []
    for d in days:
        with eng.connect() as conn:
            scores = np.fromiter(conn.execute(db.query("published_scores"), {"job": spec.name, "ds": d["ds"]}).scalars(), dtype=np.float64)
        found.append(estimate_day(eng, spec, d["ds"], d["run_id"], d["model_name"], int(d["model_version"]), scores))
    if found:
        from pipeline.metrics import export

        export(settings, spec.name, eng)
    return found


# ---- reconciliation ---------------------------------------------------------------------------------


def history(eng: Any, job: str, first: date, last: date) -> list[dict[str, Any]]:
    """The job's estimates of days ``first``..``last``, oldest first, each with the realized values and the
    errors (estimated - realized) once its published run is evaluated (None before)."""
    with eng.connect() as conn:
        rows = conn.execute(db.query("list_performance_estimates"), {"job": job, "first": first, "last": last}).mappings()
        return [dict(r) for r in rows]
