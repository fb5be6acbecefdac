"""A published day's delayed-label metrics and their grading, by the model's kind (:mod:`pipeline.evaluate` runs it).

What a day is measured by, from the published columns (``score``, ``label``, ``scores``) and the outcomes:

- binary: AUC, log loss, Brier score, the decision's precision and recall, calibration by score decile;
  graded by the AUC drop and the log-loss rise against the holdout, and the calibration error;
- multiclass: log loss and accuracy (from every class's published probability, ``scores``), macro F1, each
  class's recall and share, and the confusion matrix (rows the actual class, columns the chosen one);
  graded by the log-loss rise and the accuracy drop;
- regression: RMSE, MAE and R² of the published value; for a quantile model also the mean pinball loss and
  the share of outcomes inside the [lowest, highest] quantile (``coverage``); predicted against actual by
  decile of prediction and a histogram of the residuals (actual - predicted). Graded by the RMSE's rise
  relative to the holdout's (day / holdout - 1) and, for quantile models, the coverage's drop below the
  holdout's (the quantiles' nominal span when the holdout has none).
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from pipeline import kinds
from pipeline.errors import NightscoreError

DECILES = 10
RESIDUAL_BINS = 20
# the comparisons with the holdout each kind is graded by (their thresholds: the spec's evaluation block)
COMPARISONS = {
    "binary": ("auc_drop", "logloss_rise", "calibration_error"),
    "multiclass": ("logloss_rise", "accuracy_drop"),
    "regression": ("rmse_rise", "coverage_drop"),
}


def _r(value: float) -> float:
    return round(float(value), 6)


# ---- the published scores ---------------------------------------------------------------------------


def scores_matrix(texts: pd.Series, keys: list[str], where: str) -> np.ndarray:
    """The published ``scores`` (JSON text, one object a row) as an (n, len(keys)) float64 matrix, columns in
    ``keys`` order; a row without scores, or without one of the keys, is refused."""
    if len(texts) == 0:
        return np.empty((0, len(keys)), dtype=np.float64)
    if texts.isna().any():
        raise NightscoreError(
            f"{int(texts.isna().sum())} published rows have no scores (every class's probability or every quantile)",
            where=where,
            fix="score the day again (nightscore score) with a model of the spec's kind",
        )
    from pyarrow import json as pajson

    options = pajson.ParseOptions(explicit_schema=pa.schema([(k, pa.float64()) for k in keys]), unexpected_field_behavior="ignore")
    table = pajson.read_json(io.BytesIO("\n".join(texts.tolist()).encode()), parse_options=options)
    lacking = [k for k in keys if table.column(k).null_count]
    if lacking:
        raise NightscoreError(
            f"the published scores lack {lacking} in {max(table.column(k).null_count for k in lacking)} rows",
            where=where,
            fix="the spec's decision.classes changed since the day was scored: score the day again with a model for the spec as it is",
        )
    return np.column_stack([table.column(k).to_numpy() for k in keys]).astype(np.float64)


def quantile_keys(texts: pd.Series) -> list[str]:
    """The quantiles a quantile model published (``scores``' keys, ascending); empty for a single-value model."""
    known = texts.dropna()
    if known.empty:
        return []
    return sorted(json.loads(known.iloc[0]), key=float)


# ---- the day's metrics ------------------------------------------------------------------------------


def day_metrics(spec: Any, day: pd.DataFrame, y: np.ndarray, where: str = "predictions") -> dict[str, Any]:
    """The kind's metrics of the joined day (published ``score``, ``label``, ``scores``; ``y`` the outcomes
    as :func:`pipeline.kinds.encode_labels` codes them, regression values as float64)."""
    kind = spec.model.kind
    if kind == "binary":
        from pipeline.evaluate import classification_metrics

        m = classification_metrics(y.astype(np.int8), day["score"].to_numpy(dtype=np.float64), spec.decision.threshold)
        # the decision as published (score >= threshold at scoring time), which the threshold reproduces
        m["decided_positive"] = int((day["label"] == spec.decision.positive).sum())
        return m
    if kind == "multiclass":
        classes = list(spec.decision.classes)
        return multiclass_day(y.astype(np.int64), scores_matrix(day["scores"], classes, where), classes)
    keys = quantile_keys(day["scores"])
    if keys:
        raw = scores_matrix(day["scores"], keys, where)
        return regression_day(y.astype(np.float64), raw, tuple(float(k) for k in keys))
    return regression_day(y.astype(np.float64), day["score"].to_numpy(dtype=np.float64), ())


def multiclass_day(y: np.ndarray, probs: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """:func:`pipeline.kinds.multiclass_metrics` with the confusion matrix and each class's share of the choices."""
    m = kinds.multiclass_metrics(y, probs, classes)
    chosen = probs.argmax(axis=1) if len(probs) else np.empty(0, dtype=np.int64)
    counts = np.bincount(chosen, minlength=len(classes))
    m["classes"] = classes
    m["confusion"] = kinds.confusion(y, chosen, len(classes))
    m["predicted_share"] = {c: _r(counts[i] / len(chosen)) if len(chosen) else None for i, c in enumerate(classes)}
    return m


def regression_day(y: np.ndarray, raw: np.ndarray, quantiles: tuple[float, ...]) -> dict[str, Any]:
    """:func:`pipeline.kinds.regression_metrics` with predicted against actual by decile of prediction and the
    residuals' histogram."""
    m = kinds.regression_metrics(y, raw, quantiles)
    point = kinds.point_values(raw, quantiles)
    m["quantiles"] = list(quantiles)
    m["by_decile"] = by_decile(y, point)
    m["residuals"] = residual_histogram(y - point)
    return m


def decile_bins(y: np.ndarray, values: np.ndarray, value_key: str, outcome_key: str) -> list[dict[str, Any]]:
    """Rows split at ``values``' deciles: per bin its rows, the mean value and the mean outcome (under the keys
    given). Binary calibration (mean score, outcome rate) and regression's predicted against actual both."""
    if len(values) == 0:
        return []
    edges = np.unique(np.quantile(values, np.linspace(0, 1, DECILES + 1)))
    which = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, max(len(edges) - 2, 0))
    out = []
    for b in range(max(len(edges) - 1, 1)):
        mask = which == b
        rows = int(mask.sum())
        if rows:
            out.append({"bin": b + 1, "rows": rows, value_key: _r(values[mask].mean()), outcome_key: _r(y[mask].mean())})
    return out


def by_decile(y: np.ndarray, point: np.ndarray) -> list[dict[str, Any]]:
    """Rows split at the predictions' deciles: per bin its rows, mean prediction and mean outcome."""
    return decile_bins(y, point, "mean_predicted", "mean_actual")


def residual_histogram(residuals: np.ndarray) -> dict[str, Any]:
    """Counts of ``actual - predicted`` in equal bins over the middle 99% (the rest counted in the end bins),
    with their mean (the bias) and standard deviation."""
    if len(residuals) == 0:
        return {"edges": [], "counts": [], "mean": None, "sd": None}
    lo, hi = np.quantile(residuals, [0.005, 0.995])
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    counts, edges = np.histogram(np.clip(residuals, lo, hi), bins=RESIDUAL_BINS, range=(lo, hi))
    return {"edges": [_r(e) for e in edges], "counts": counts.tolist(), "mean": _r(residuals.mean()), "sd": _r(residuals.std())}


# ---- grading ----------------------------------------------------------------------------------------


def _num(d: dict[str, Any], key: str) -> float | None:
    return kinds.as_number(d.get(key))


def comparisons(kind: str, metrics: dict[str, Any], holdout: dict[str, Any]) -> dict[str, float | None]:
    """The day against the holdout, per comparison of the kind (None where either side lacks the metric)."""

    def minus(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else a - b

    m = {k: _num(metrics, k) for k in ("auc", "logloss", "calibration_error", "accuracy", "rmse", "coverage", "coverage_expected")}
    h = {k: _num(holdout, k) for k in ("auc", "logloss", "accuracy", "rmse", "coverage")}
    if kind == "binary":
        return {
            "auc_drop": minus(h["auc"], m["auc"]),
            "logloss_rise": minus(m["logloss"], h["logloss"]),
            "calibration_error": m["calibration_error"],
        }
    if kind == "multiclass":
        return {"logloss_rise": minus(m["logloss"], h["logloss"]), "accuracy_drop": minus(h["accuracy"], m["accuracy"])}
    out: dict[str, float | None] = {"rmse_rise": m["rmse"] / h["rmse"] - 1 if m["rmse"] is not None and h["rmse"] else None}
    if "coverage" in metrics or "pinball" in metrics:  # a quantile model
        baseline = h["coverage"] if h["coverage"] is not None else m["coverage_expected"]
        out["coverage_drop"] = minus(baseline, m["coverage"])
    return out


def grade(spec: Any, metrics: dict[str, Any], holdout: dict[str, Any], rows_labelled: int) -> tuple[dict[str, dict[str, Any]], str]:
    """Each comparison's value and level (the spec's thresholds), and the day's level: ``insufficient`` with
    fewer labelled rows than ``evaluation.min_labelled``, else the worst comparison's."""
    from pipeline.drift import level

    e = spec.evaluation
    levels = {
        k: {"value": None if v is None else _r(v), "level": level(v, getattr(e, k))}
        for k, v in comparisons(spec.model.kind, metrics, holdout).items()
    }
    if rows_labelled < e.min_labelled:
        return levels, "insufficient"
    found = {v["level"] for v in levels.values()}
    return levels, "alert" if "alert" in found else "warn" if "warn" in found else "ok"


# ---- one line ---------------------------------------------------------------------------------------


def _f(value: Any, digits: int = 4) -> str:
    v = kinds.as_number(value)
    return f"{v:.{digits}f}" if v is not None else "n/a"


def _vs(metrics: dict[str, Any], holdout: dict[str, Any], key: str, label: str) -> str:
    held = f" (holdout {_f(holdout[key])})" if _num(holdout, key) is not None else ""
    return f"{label} {_f(metrics.get(key))}{held}"


def summary(kind: str, metrics: dict[str, Any], holdout: dict[str, Any]) -> str:
    """The day's metrics in one phrase, by kind, beside the holdout's where it has them."""
    m = metrics
    if kind == "multiclass":
        return f"{_vs(m, holdout, 'logloss', 'log loss')}, {_vs(m, holdout, 'accuracy', 'accuracy')}, macro F1 {_f(m.get('macro_f1'))}"
    if kind == "regression":
        text = f"{_vs(m, holdout, 'rmse', 'RMSE')}, MAE {_f(m.get('mae'))}, R² {_f(m.get('r2'))}"
        if "pinball" in m:
            text += f", pinball {_f(m.get('pinball'))}, coverage {_f(m.get('coverage'), 3)} of {_f(m.get('coverage_expected'), 2)} expected"
        return text
    auc = f"AUC {m['auc']:.4f}" if m.get("auc") is not None else "AUC n/a"
    hold = f" (holdout {holdout['auc']:.4f})" if holdout.get("auc") is not None else ""
    return (
        f"{auc}{hold}, log loss {m.get('logloss')}, calibration error {m.get('calibration_error')}, "
        f"precision {m.get('precision')}, recall {m.get('recall')}"
    )
