"""Champion against shadow: how a challenger scored the same published rows (``nightscore compare``, the run
report's shadow section, ``nightscore model promote --evidence compare``).

Per day, from the published champion rows and one shadow model's rows joined by entity: how often the two
decide the same label, how their scores correlate (Pearson, Spearman), the distribution of the difference
(shadow minus champion), the PSI between the two score distributions (the champion's deciles as bins), and
the rows whose label flipped. Once a day's outcomes have matured (the job's ``evaluation`` section), the
realized metric of each model on the same labelled rows and the difference with a 95% confidence interval
from a paired bootstrap: the rows are resampled jointly, so both models are measured on the same resample
each time. Over the window: the same, pooled. NumPy and SciPy only.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from pipeline import db
from pipeline.config import Settings
from pipeline.errors import NightscoreError

log = logging.getLogger(__name__)

RESAMPLES = 1000
SEED = 26
PSI_BINS = 10  # the champion's deciles
SAMPLE = 20  # flipped entity ids shown, largest |difference| first
# the realized metrics per kind; the first is the headline (evidence, the run report); True: higher is better
METRICS: dict[str, list[tuple[str, bool]]] = {
    "binary": [("auc", True), ("logloss", False)],
    "multiclass": [("logloss", False), ("accuracy", True)],
    "regression": [("rmse", False), ("mae", False)],
}


def _r(value: float | None, digits: int = 6) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), digits)


# ---- the statistics ---------------------------------------------------------------------------------


def decile_shares(reference: np.ndarray, values: np.ndarray, bins: int = PSI_BINS) -> tuple[np.ndarray, np.ndarray]:
    """The shares of ``reference`` and ``values`` in the reference's quantile bins (ties merge bins)."""
    reference = np.asarray(reference, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    if len(reference) == 0 or len(values) == 0:
        return np.zeros(0), np.zeros(0)
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    k = len(edges) + 1
    ref = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=k) / len(reference)
    val = np.bincount(np.searchsorted(edges, values, side="right"), minlength=k) / len(values)
    return ref, val


def score_psi(champion: np.ndarray, shadow: np.ndarray, bins: int = PSI_BINS) -> float | None:
    """PSI of the shadow's scores against the champion's, over the champion's deciles (:func:`pipeline.drift.psi`)."""
    from pipeline.drift import psi

    expected, actual = decile_shares(champion, shadow, bins)
    return psi(expected, actual) if len(expected) else None


def correlations(a: np.ndarray, b: np.ndarray) -> tuple[float | None, float | None]:
    """Pearson and Spearman correlation of two score vectors (None where either is constant or too short)."""
    from scipy.stats import spearmanr

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None, None
    pearson = float(np.corrcoef(a, b)[0, 1])
    spearman = float(spearmanr(a, b).statistic)
    return pearson, spearman


def paired_stats(
    ids: np.ndarray,
    champion: np.ndarray,
    shadow: np.ndarray,
    champion_labels: np.ndarray | None,
    shadow_labels: np.ndarray | None,
    sample: int = SAMPLE,
) -> dict[str, Any]:
    """Agreement, correlation, difference, PSI and flipped rows of the same rows scored by two models."""
    champion = np.asarray(champion, dtype=np.float64)
    shadow = np.asarray(shadow, dtype=np.float64)
    n = len(champion)
    diff = shadow - champion
    pearson, spearman = correlations(champion, shadow)
    out: dict[str, Any] = {
        "rows": n,
        "agreement": None,
        "pearson": _r(pearson),
        "spearman": _r(spearman),
        "diff": None,
        "psi": _r(score_psi(champion, shadow)),
        "flipped": None,
    }
    if n:
        p5, p50, p95 = np.percentile(diff, [5, 50, 95])
        out["diff"] = {
            "mean": _r(diff.mean()),
            "std": _r(diff.std()),
            "p5": _r(p5),
            "p50": _r(p50),
            "p95": _r(p95),
            "max_abs": _r(np.abs(diff).max()),
        }
    have_labels = (
        champion_labels is not None
        and shadow_labels is not None
        and n > 0
        and not (pd.isna(champion_labels).all() and pd.isna(shadow_labels).all())
    )
    if have_labels:
        a = np.asarray(champion_labels, dtype=object)
        b = np.asarray(shadow_labels, dtype=object)
        flipped = a != b
        count = int(flipped.sum())
        worst = np.argsort(-np.abs(np.where(flipped, diff, 0.0)), kind="stable")[: min(sample, count)]
        moves = Counter(f"{x}→{y}" for x, y in zip(a[flipped], b[flipped], strict=True))
        out["agreement"] = _r(1.0 - count / n)
        out["flipped"] = {
            "count": count,
            "share": _r(count / n),
            "moves": dict(moves.most_common(10)),
            "sample": [str(i) for i in np.asarray(ids, dtype=object)[worst]],
        }
    return out


# ---- realized metrics and the paired bootstrap ------------------------------------------------------


def resample_weights(n: int, resamples: int, rng: np.random.Generator, cells: int = 2_000_000) -> Iterator[np.ndarray]:
    """Bootstrap resamples of ``n`` rows as weights (how often each row was drawn), ``(b, n)`` at a time."""
    chunk = max(1, min(resamples, cells // max(n, 1)))
    for start in range(0, resamples, chunk):
        b = min(chunk, resamples - start)
        kind = np.int32 if b * n < 2**31 else np.int64  # half the memory traffic of int64
        offsets: np.ndarray = np.arange(b, dtype=kind) * n
        idx: np.ndarray = rng.integers(0, n, size=(b, n), dtype=kind) + offsets[:, None]
        yield np.bincount(idx.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)


def auc_function(y: np.ndarray, p: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """``weights (b, n) -> b AUCs`` of scores ``p`` against 0/1 ``y``: the rank formulation of
    :func:`pipeline.train.auc` (ties counted half) with each row counted as often as it was drawn. Each
    positive's negatives below and tied are found once (sorted, searched); per resample it is a cumulative
    sum over the negatives and a weighted sum over the positives."""
    yb = np.asarray(y).astype(bool)
    p = np.asarray(p, dtype=np.float64)
    pos, neg = np.flatnonzero(yb), np.flatnonzero(~yb)
    neg = neg[np.argsort(p[neg], kind="stable")]
    lo = np.searchsorted(p[neg], p[pos], side="left")
    hi = np.searchsorted(p[neg], p[pos], side="right")

    def f(w: np.ndarray) -> np.ndarray:
        below = np.zeros((w.shape[0], len(neg) + 1))
        np.cumsum(w[:, neg], axis=1, out=below[:, 1:])  # the negatives' weight below each sorted position
        wp = w[:, pos]
        # a positive counts the negatives below it and half those tied: (below(lo) + below(hi)) / 2
        num = 0.5 * np.einsum("ij,ij->i", wp, below[:, lo] + below[:, hi])
        den = wp.sum(axis=1) * below[:, -1]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)

    return f


def weighted_auc(weights: np.ndarray, y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """:func:`auc_function` of ``y`` and ``p`` at ``weights``."""
    return auc_function(y, p)(weights)


def _row_losses(kind: str, name: str, y: np.ndarray, score: np.ndarray, probs: np.ndarray | None) -> np.ndarray:
    """Each row's share of a mean-type metric (the metric is a weighted mean of these, RMSE's square root after)."""
    if kind == "binary" and name == "logloss":
        p = np.clip(score, 1e-7, 1 - 1e-7)
        return -(y * np.log(p) + (1 - y) * np.log(1 - p))
    if kind == "multiclass":
        assert probs is not None
        if name == "accuracy":
            return (probs.argmax(axis=1) == y).astype(np.float64)
        return -np.log(np.clip(probs[np.arange(len(y)), y.astype(np.int64)], 1e-15, 1.0))
    if name == "rmse":
        return (y - score) ** 2
    return np.abs(y - score)  # mae


def metric_function(kind: str, name: str, y: np.ndarray, score: np.ndarray, probs: np.ndarray | None) -> Callable[[np.ndarray], np.ndarray]:
    """``weights (b, n) -> b values`` of the metric ``name`` of one model on the rows ``y``."""
    if name == "auc":
        return auc_function(y, score)
    losses = _row_losses(kind, name, y, np.asarray(score, dtype=np.float64), probs)
    if name == "rmse":
        return lambda w: np.sqrt(w @ losses / w.sum(axis=1))
    return lambda w: w @ losses / w.sum(axis=1)


Pair = tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]


def paired_bootstrap(
    pairs: dict[str, Pair], n: int, *, resamples: int = RESAMPLES, seed: int = SEED, level: float = 0.95
) -> dict[str, dict[str, Any]]:
    """For each metric of ``pairs`` (``name -> (champion's, shadow's)``): both models' value on all ``n`` rows,
    the difference (shadow - champion), and its ``level`` percentile interval over ``resamples`` joint
    resamples of the rows: the same rows for both models, and for every metric, each time."""
    full = np.ones((1, n))
    diffs: dict[str, list[np.ndarray]] = {name: [] for name in pairs}
    if n > 1 and resamples > 0:
        for w in resample_weights(n, resamples, np.random.default_rng(seed)):
            for name, (fa, fb) in pairs.items():
                diffs[name].append(fb(w) - fa(w))
    tail = (1 - level) / 2 * 100
    out: dict[str, dict[str, Any]] = {}
    for name, (fa, fb) in pairs.items():
        a, b = float(fa(full)[0]), float(fb(full)[0])
        d = np.concatenate(diffs[name]) if diffs[name] else np.zeros(0)
        d = d[np.isfinite(d)]
        lo, hi = np.percentile(d, [tail, 100 - tail]) if len(d) else (np.nan, np.nan)
        out[name] = {
            "champion": _r(a),
            "shadow": _r(b),
            "diff": _r(b - a),
            "ci": [_r(lo), _r(hi)],
            "level": level,
            "resamples": int(len(d)),
            "_diffs": d,
        }
    return out


def realized(
    kind: str,
    y: np.ndarray,
    champion: np.ndarray,
    shadow: np.ndarray,
    champion_probs: np.ndarray | None = None,
    shadow_probs: np.ndarray | None = None,
    *,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> dict[str, Any]:
    """Each of the kind's metrics (:data:`METRICS`) for both models on the same labelled rows, with the
    paired bootstrap's interval of the difference and the share of resamples in which the shadow did better."""
    y = np.asarray(y)
    n = len(y)
    out: dict[str, Any] = {"rows": n, "metrics": {}}
    if kind == "binary":
        out["positives"] = int(y.sum())
    pairs = {
        name: (metric_function(kind, name, y, champion, champion_probs), metric_function(kind, name, y, shadow, shadow_probs))
        for name, _ in METRICS[kind]
    }
    found = paired_bootstrap(pairs, n, resamples=resamples, seed=seed)
    for name, higher in METRICS[kind]:
        m = found[name]
        d = m.pop("_diffs")
        m["higher_is_better"] = higher
        m["shadow_better_share"] = _r(float(np.mean(d > 0 if higher else d < 0))) if len(d) else None
        out["metrics"][name] = m
    return out


# ---- reading the published rows ---------------------------------------------------------------------


@dataclass
class DayRows:
    """One published day's champion and shadow rows, joined by entity."""

    ds: date
    frame: pd.DataFrame  # entity_id, champion_version, champion_/shadow_ score, label, scores

    @property
    def rows(self) -> int:
        return len(self.frame)


def load_day(eng: Any, job: str, ds: date, version: int) -> DayRows:
    with eng.connect() as conn:
        frame = pd.read_sql(db.query("compare_day"), conn, params={"job": job, "ds": ds, "version": version})
    return DayRows(ds, frame)


def day_stats(frame: pd.DataFrame, sample: int = SAMPLE) -> dict[str, Any]:
    """:func:`paired_stats` of a joined frame (:func:`load_day`)."""
    return paired_stats(
        frame["entity_id"].to_numpy(dtype=object),
        frame["champion_score"].to_numpy(dtype=np.float64),
        frame["shadow_score"].to_numpy(dtype=np.float64),
        frame["champion_label"].to_numpy(dtype=object),
        frame["shadow_label"].to_numpy(dtype=object),
        sample,
    )


def labelled_metrics(spec: Any, day: pd.DataFrame, *, resamples: int, seed: int) -> dict[str, Any] | None:
    """:func:`realized` of joined rows that have an outcome (:func:`load_day`'s frame merged with
    :func:`pipeline.evaluate.load_outcomes`); None when there are none."""
    from pipeline.evaluate_kinds import scores_matrix

    if day.empty:
        return None
    kind = spec.model.kind
    y = day["outcome"].to_numpy()
    y = y.astype(np.float64) if kind != "multiclass" else y.astype(np.int64)
    probs: list[np.ndarray | None] = [None, None]
    if kind == "multiclass":
        classes = list(spec.decision.classes)
        probs = [scores_matrix(day[f"{who}_scores"], classes, f"{who} rows of {spec.name}") for who in ("champion", "shadow")]
    return realized(
        kind,
        y,
        day["champion_score"].to_numpy(dtype=np.float64),
        day["shadow_score"].to_numpy(dtype=np.float64),
        probs[0],
        probs[1],
        resamples=resamples,
        seed=seed,
    )


# ---- the comparison over a window -------------------------------------------------------------------


def no_shadow_data(spec: Any, version: int | None, start: date | None, end: date | None) -> NightscoreError:
    which = f"{spec.model.name} v{version}" if version is not None else "any shadow model"
    span = f" from {start} to {end}" if start and end else ""
    flag = f" --shadow {version}" if version is not None else " --shadow <version>"
    return NightscoreError(
        f"job {spec.name!r} has no published shadow scores of {which}{span}",
        where="shadow_predictions",
        fix=f"score days with it as a shadow model (model.shadow in {spec.spec_path.name}, or `nightscore score --job {spec.name}{flag}`), "
        "then compare again; a rerun of a day without it drops that day's shadow rows",
    )


def compare(
    settings: Settings,
    spec: Any,
    *,
    days: int = 7,
    end: date | None = None,
    version: int | None = None,
    today: date | None = None,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    sample: int = SAMPLE,
) -> dict[str, Any]:
    """Every shadow model (or ``version``) of ``spec``'s job against the published champion over the ``days``
    days ending ``end`` (default: the latest day with shadow rows): per day and pooled. Raises when there
    are no shadow rows in the window."""
    from pipeline.schedule import job_today

    eng = db.ready_engine(settings)
    if end is None:
        with eng.connect() as conn:
            end = conn.execute(db.query("latest_shadow_day"), {"job": spec.name, "version": version}).scalar()
        if end is None:
            raise no_shadow_data(spec, version, None, None)
    start = end - timedelta(days=days - 1)
    today = today or job_today(spec.timezone)
    with eng.connect() as conn:
        found = conn.execute(db.query("shadow_days"), {"job": spec.name, "start": start, "end": end, "version": version}).all()
    if not found:
        raise no_shadow_data(spec, version, start, end)
    by_version: dict[int, list[date]] = {}
    for r in found:
        by_version.setdefault(int(r.model_version), []).append(r.ds)
    comparisons = [
        _compare_version(settings, eng, spec, v, dss, today=today, resamples=resamples, seed=seed, sample=sample)
        for v, dss in sorted(by_version.items())
    ]
    return {
        "job": spec.name,
        "kind": spec.model.kind,
        "model_name": spec.model.name,
        "window": {"start": start.isoformat(), "end": end.isoformat(), "days": days},
        "today": today.isoformat(),
        "resamples": resamples,
        "seed": seed,
        "comparisons": comparisons,
    }


def _compare_version(
    settings: Settings, eng: Any, spec: Any, version: int, dss: list[date], *, today: date, resamples: int, seed: int, sample: int
) -> dict[str, Any]:
    from pipeline.evaluate import load_outcomes

    per_day: list[dict[str, Any]] = []
    frames: list[pd.DataFrame] = []
    labelled: list[pd.DataFrame] = []
    for ds in sorted(dss):
        frame = load_day(eng, spec.name, ds, version).frame
        entry: dict[str, Any] = {"ds": ds.isoformat(), "champion_versions": sorted({int(v) for v in frame["champion_version"].unique()})}
        entry.update(paired_stats_of(frame, sample))
        entry["realized"], entry["labels"] = None, _label_note(spec, ds, today)
        if entry["labels"] == "matured" and not frame.empty:
            joined = frame.merge(load_outcomes(settings, spec, ds), on="entity_id", how="inner")
            entry["realized"] = labelled_metrics(spec, joined, resamples=resamples, seed=seed)
            if not joined.empty:
                labelled.append(joined)
        per_day.append(entry)
        frames.append(frame)
    pooled = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    overall: dict[str, Any] = {"days": len(per_day), **paired_stats_of(pooled, sample)}
    overall["realized"] = None
    overall["labelled_days"] = len(labelled)
    if labelled:
        overall["realized"] = labelled_metrics(spec, pd.concat(labelled, ignore_index=True), resamples=resamples, seed=seed)
    return {
        "model_name": spec.model.name,
        "shadow_version": version,
        "champion_versions": sorted({v for d in per_day for v in d["champion_versions"]}),
        "days": per_day,
        "overall": overall,
    }


def paired_stats_of(frame: pd.DataFrame, sample: int = SAMPLE) -> dict[str, Any]:
    if frame.empty:
        return paired_stats(np.zeros(0, dtype=object), np.zeros(0), np.zeros(0), None, None, sample)
    return day_stats(frame, sample)


def _label_note(spec: Any, ds: date, today: date) -> str:
    """``matured``, or why the day has no realized metrics yet."""
    from pipeline.evaluate import mature_on

    if spec.evaluation is None:
        return "no evaluation section in the job spec"
    ready = mature_on(spec, ds)
    return "matured" if ready <= today else f"outcomes mature on {ready}"


# ---- a promotion's evidence -------------------------------------------------------------------------


def headline(kind: str, realized_: dict[str, Any] | None) -> dict[str, Any] | None:
    """The kind's headline realized metric (:data:`METRICS`' first) of a :func:`realized` result."""
    if not realized_:
        return None
    name = METRICS[kind][0][0]
    return {"metric": name, **realized_["metrics"][name]}


def summary(result: dict[str, Any], comparison: dict[str, Any]) -> dict[str, Any]:
    """What a promotion keeps of one version's comparison (``model_alias_history.evidence``)."""
    o = comparison["overall"]
    return {
        "kind": "compare",
        "job": result["job"],
        "model_name": comparison["model_name"],
        "shadow_version": comparison["shadow_version"],
        "champion_versions": comparison["champion_versions"],
        "window": result["window"],
        "days_compared": o["days"],
        "labelled_days": o["labelled_days"],
        "rows": o["rows"],
        "agreement": o["agreement"],
        "pearson": o["pearson"],
        "spearman": o["spearman"],
        "psi": o["psi"],
        "diff": o["diff"],
        "flipped": {k: v for k, v in (o["flipped"] or {}).items() if k != "sample"} or None,
        "realized": o["realized"],
        "per_day": [
            {
                "ds": d["ds"],
                "rows": d["rows"],
                "agreement": d["agreement"],
                "psi": d["psi"],
                "realized": headline(result["kind"], d["realized"]),
            }
            for d in comparison["days"]
        ],
        "computed_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def promotion_evidence(settings: Settings, model_name: str, version: int, *, job: str | None = None, days: int = 7) -> dict[str, Any]:
    """The comparison of ``version`` as a shadow against the published champion of its job over the last
    ``days`` days with its shadow rows, as kept with a promotion. Raises when there are none."""
    from pipeline.jobs import load_each, load_job

    if job is not None:
        spec = load_job(settings.jobs_dir, job)
        if spec.model.name != model_name:
            raise NightscoreError(
                f"job {job!r} scores with model {spec.model.name!r}, not {model_name!r}",
                where="--job",
                fix=f"name a job whose model.name is {model_name}",
            )
    else:
        specs = [s for s in load_each(settings.jobs_dir)[0] if s.model.name == model_name]
        if len(specs) != 1:
            found = ", ".join(s.name for s in specs) or "none"
            raise NightscoreError(
                f"--evidence compare needs the job whose published days {model_name} v{version} shadowed (jobs scored by {model_name}: {found})",
                where="--job",
                fix="name the job: --job <job>",
            )
        spec = specs[0]
    result = compare(settings, spec, days=days, version=version)
    return summary(result, result["comparisons"][0])
