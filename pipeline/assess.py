"""A model on labelled rows: its predictions, the kind's metrics and the drift reference.

``nightscore train`` assesses the model it trained on the held-out days; ``nightscore model register`` a
handed-over model on a reference window of the job's training query. Both keep the same things, so
``model list``, the run report, drift and the champion gate work alike for either.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from pipeline import kinds
from pipeline.errors import NightscoreError
from pipeline.features import to_matrix, value_sets


@dataclass(frozen=True)
class Assessment:
    raw: np.ndarray  # kinds.raw_predict's output
    outputs: kinds.Outputs
    metrics: dict[str, Any]  # the kind's metrics (empty without labels)


def labels(table: pa.Table, spec: Any, where: str) -> np.ndarray:
    """The label column as XGBoost wants it, or a :class:`NightscoreError` naming what does not fit the kind."""
    col = spec.training.label
    try:
        return kinds.encode_labels(table.column(col), spec, what=f"label column {col!r}")
    except kinds.LabelError as exc:
        fix = {
            "binary": f"select {col} as a boolean or 0/1",
            "multiclass": f"select {col} as one of decision.classes {spec.decision.classes} or its number (0 = the first)",
            "regression": f"select {col} as a finite number; leave out rows whose value is unknown",
        }[spec.model.kind]
        raise NightscoreError(f"job {spec.name!r}: {exc}", where=where, fix=fix) from None


def predict(spec: Any, booster: Any, table: pa.Table, info: kinds.ModelInfo | None = None) -> np.ndarray:
    info = info or kinds.model_info(booster)
    x = to_matrix(table, spec, coding=value_sets(kinds.coding(spec, info)))
    return kinds.raw_predict(booster, x, info)


def assess(spec: Any, booster: Any, table: pa.Table, y: np.ndarray | None, info: kinds.ModelInfo | None = None) -> Assessment:
    info = info or kinds.model_info(booster)
    raw = predict(spec, booster, table, info)
    out = kinds.outputs(raw, spec, info)
    metrics: dict[str, Any] = {}
    if y is not None and len(y):
        metrics = kinds.kind_metrics(spec, y, raw, info)
        metrics.pop("calibration", None)
        if spec.model.kind == "binary":
            metrics["positive_rate"] = round(float(np.mean(y)), 6)
            from pipeline.estimate import holdout_checks  # whether estimates before labels can be trusted

            metrics.update(holdout_checks(y, np.asarray(raw, dtype=np.float64)))
    return Assessment(raw, out, metrics)


def contribution_reference(
    spec: Any, booster: Any, table: pa.Table, info: kinds.ModelInfo | None = None, threads: int = 0
) -> dict[str, Any]:
    """What drives the model's scores on these rows: each feature's mean |contribution| (XGBoost's approx
    contributions), which the run report sets each explained day against (:mod:`pipeline.explain`)."""
    from pipeline.explain import reference

    info = info or kinds.model_info(booster)
    x = to_matrix(table, spec, coding=value_sets(kinds.coding(spec, info)))
    return reference(booster, x, spec, info, threads)


def manifest(
    spec: Any,
    info: kinds.ModelInfo,
    *,
    metrics: dict[str, Any],
    window: dict[str, Any],
    reference: dict[str, Any],
    origin: dict[str, Any],
    params: dict[str, Any],
    num_boost_round: int,
) -> dict[str, Any]:
    """A version's manifest, trained or registered alike (``reference``: what drift is measured against, binned
    distributions and no raw rows, :mod:`pipeline.drift`)."""
    import xgboost as xgb

    from pipeline.features import feature_types

    return {
        "job": spec.name,
        "kind": spec.model.kind,
        "model": info.to_json(),
        "features": [f.model_dump(exclude_none=True) for f in spec.features],
        "feature_types": feature_types(spec),
        "metrics": metrics,
        "training_window": window,
        "params": params,
        "num_boost_round": num_boost_round,
        "xgboost_version": xgb.__version__,
        "format": "ubj",
        "origin": origin,
        "reference": reference,
    }


def score_reference(spec: Any, a: Assessment) -> dict[str, Any]:
    """What a day's scores are compared with for drift: the score's deciles and, for multiclass, each class's
    share of the chosen classes."""
    from pipeline.monitor import reference_bins

    ref: dict[str, Any] = {"score": reference_bins(a.outputs.score.astype(np.float64))}
    if spec.model.kind == "multiclass":
        ref["classes"] = class_shares(a.outputs.label, list(spec.decision.classes))
    return ref


def class_shares(label: pa.Array | pa.ChunkedArray, classes: list[str]) -> dict[str, Any]:
    """Each class's share of the chosen classes: the multiclass drift reference (:func:`pipeline.drift.class_metrics`)."""
    from pipeline.drift import class_counts

    counts = class_counts(label, classes)
    total = max(sum(counts), 1)
    return {"values": classes, "shares": [c / total for c in counts]}
