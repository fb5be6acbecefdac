"""Monitor: drift of the day's scores against the model's training reference (population stability index).

The score is whatever the kind publishes (a probability, the chosen class's probability, a predicted value of
any range): its reference is the deciles of the model's own scores on its holdout (or reference window), so
nothing here assumes [0, 1]. A multiclass model's chosen classes are compared with their shares there too."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from sqlalchemy.engine import Engine

from pipeline.jobs import JobSpec
from pipeline.storage import ArtifactStore, model_prefix

log = logging.getLogger(__name__)
BINS = 10


def reference_bins(values: np.ndarray) -> dict[str, list[float]]:
    """Decile edges of ``values`` and the share of values in each bin: a model's drift reference."""
    values = values[~np.isnan(values)]
    edges = np.unique(np.quantile(values, np.linspace(0, 1, BINS + 1)))
    counts = np.histogram(values, bins=_open_edges(edges))[0]
    return {"edges": edges.tolist(), "shares": (counts / max(counts.sum(), 1)).tolist()}


def _open_edges(edges: np.ndarray) -> np.ndarray:
    e = np.asarray(edges, dtype=np.float64).copy()
    e[0], e[-1] = -np.inf, np.inf
    return e


def psi(reference: dict[str, list[float]], values: np.ndarray) -> float:
    """Population stability index of ``values`` against a :func:`reference_bins` reference."""
    from pipeline import drift

    values = values[~np.isnan(values)]
    if len(values) == 0:
        return float("nan")
    return drift.psi(np.asarray(reference["shares"]), drift.score_shares(reference, values))


def drift_report(
    store: ArtifactStore,
    eng: Engine,
    spec: JobSpec,
    model_version: int | None,
    predictions: Path | list[Path],
    shard_counts: list[dict[str, Any] | None] | None = None,
) -> dict[str, Any]:
    """The day's drift: the score's PSI (kept as ``score_psi``) and, with the shards' feature counts, every
    feature's and the score's metrics with their levels (``metrics``, for the drift_metrics table) and a
    summary (``level``, ``alerts``, ``warnings``)."""
    from pipeline import drift

    paths = predictions if isinstance(predictions, list) else [predictions]
    columns = ["score", "label"] if spec.model.kind == "multiclass" else ["score"]
    tables = [pq.read_table(p, columns=columns) for p in paths]
    parts = [t.column("score").to_numpy() for t in tables]
    scores = np.concatenate(parts) if parts else np.array([], dtype=np.float64)
    report: dict[str, Any] = {"score_mean": float(scores.mean()) if len(scores) else None, "rows": int(len(scores))}
    if model_version is None:
        return report
    key = f"{model_prefix(spec.model.name, model_version)}/manifest.json"
    try:
        manifest = json.loads(store.get_bytes(key))
    except Exception:
        log.warning("no manifest at %s; drift not measured", key)
        return report
    reference = manifest.get("reference") or {}
    ref = reference.get("score")
    metrics: list[dict[str, Any]] = []
    features = reference.get("features")
    merged = drift.merge_counts(shard_counts or [])
    if features and merged:
        metrics += drift.day_metrics(features, merged, spec.drift)
    day = drift.score_shares(ref, scores) if ref and len(scores) else None  # the scores binned once, for all three
    if ref and day is not None:
        metrics += drift.score_metrics(ref, day, spec.drift)
        report["score_hist"] = {  # for the run report's plot: the day's shares in the reference's deciles
            "edges": ref["edges"],
            "reference": ref["shares"],
            "day": [round(float(share), 6) for share in day],
        }
    classes = reference.get("classes")
    if spec.model.kind == "multiclass" and classes and tables:
        counts = [sum(c) for c in zip(*(drift.class_counts(t.column("label"), classes["values"]) for t in tables), strict=True)]
        metrics += drift.class_metrics(classes, counts, spec.drift)
        seen = max(sum(counts), 1)
        report["class_shares"] = {  # for the run report's plot: each class's share of the choices
            "values": classes["values"],
            "reference": [round(float(x), 6) for x in classes["shares"]],
            "day": [round(c / seen, 6) for c in counts],
        }
    if metrics:
        report["metrics"] = metrics
        report.update(drift.summary(metrics))
        for m in metrics:
            if m["level"] == "alert":
                log.warning("drift alert for %s: %s %s = %s", spec.name, m["feature"], m["metric"], m["value"])
    if ref:
        value = drift.psi(np.asarray(ref["shares"]), day) if day is not None else float("nan")
        report["score_psi"] = round(value, 5)
        report["score_psi_warn"] = bool(value > spec.drift.psi_warn)
        if report["score_psi_warn"]:
            log.warning("score drift for %s: PSI %.3f above %.3f", spec.name, value, spec.drift.psi_warn)
    return report
