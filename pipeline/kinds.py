"""Model kinds: what a binary, multiclass or regression model's output means, and everything that depends on it.

One place for the rules every stage shares: which XGBoost objectives fit a kind, what a registered model
says about itself (objective, classes, quantiles, the categories it was trained on), how a raw prediction
becomes the published ``score``, ``label`` and ``scores``, how labels are read and checked, and the kind's
metrics with the primary one the champion gate compares.

What applications read, per kind:

- binary: ``score`` the positive class's probability, ``label`` the decision, ``scores`` NULL;
- multiclass: ``score`` the chosen class's probability, ``label`` that class, ``scores`` every class's
  probability (``{"basic": 0.1, ...}``);
- regression: ``score`` the predicted value (a quantile model: its median, or the quantile nearest it),
  ``label`` the band it falls in or NULL, ``scores`` every quantile (``{"0.1": ..., "0.9": ...}``) or NULL.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.objectives import (  # noqa: F401  (the kind rules, re-exported for the stages)
    DEFAULT_OBJECTIVE,
    KINDS,
    METRICS,
    OBJECTIVES,
    PRIMARY,
    check_training,
    higher_is_better,
    kind_of_objective,
    objective,
    primary_metric,
    quantiles_of,
)

# ---- what a model says about itself ---------------------------------------------------------------


@dataclass(frozen=True)
class ModelInfo:
    """A loaded booster's own description: objective, class count, quantiles, features and stored categories."""

    objective: str
    num_class: int = 0
    num_target: int = 1
    quantiles: tuple[float, ...] = ()
    feature_names: tuple[str, ...] = ()
    feature_types: tuple[str, ...] = ()
    categories: dict[str, list[str]] = field(default_factory=dict)  # feature -> categories, code order (XGBoost 3.1+)

    @property
    def kind(self) -> str | None:
        return kind_of_objective(self.objective)

    def to_json(self) -> dict[str, Any]:
        return {
            "objective": self.objective,
            "num_class": self.num_class,
            "quantiles": list(self.quantiles),
            "categories": self.categories,
        }


def model_info(booster: Any) -> ModelInfo:
    config = json.loads(booster.save_config())["learner"]
    obj = config["objective"]
    params = config.get("learner_model_param", {})
    quantiles: tuple[float, ...] = ()
    if obj["name"] == "reg:quantileerror":
        quantiles = tuple(float(a) for a in json.loads(obj["quantile_loss_param"]["quantile_alpha"]))
    return ModelInfo(
        objective=obj["name"],
        num_class=int(params.get("num_class", 0) or 0),
        num_target=int(params.get("num_target", 1) or 1),
        quantiles=quantiles,
        feature_names=tuple(booster.feature_names or ()),
        feature_types=tuple(booster.feature_types or ()),
        categories=stored_categories(booster),
    )


def stored_categories(booster: Any) -> dict[str, list[str]]:
    """The categories each categorical feature was trained on, in the model's code order (XGBoost 3.1+ keeps them
    when the model was trained on pandas or Arrow categories); empty for a model trained on codes."""
    try:
        cats = booster.get_categories(export_to_arrow=True).to_arrow()
    except Exception:  # an older XGBoost, or a model without stored categories
        return {}
    if not cats:
        return {}
    return {name: [str(v) for v in values.to_pylist()] for name, values in cats if values is not None}


def coding(spec: Any, info: ModelInfo | None) -> dict[str, list[str]]:
    """Per categorical feature, the values in the order the model codes them: the model's stored categories where
    it has them, else the spec's ``values`` (code 0 is the first value listed)."""
    stored = info.categories if info is not None else {}
    return {f.name: stored.get(f.name) or list(f.values) for f in spec.features if f.type == "category"}


def check_model(spec: Any, info: ModelInfo) -> list[str]:
    """Everything about a model that does not fit the job's contract, one line each (empty: it fits)."""
    problems: list[str] = []
    names = spec.feature_names
    if not info.feature_names:
        problems.append(f"the model has no feature names: save it from a model trained on named columns ({', '.join(names)})")
    elif list(info.feature_names) != names:
        if sorted(info.feature_names) == sorted(names):
            problems.append(
                f"the model's features are in another order: {', '.join(info.feature_names)}; the spec lists {', '.join(names)}"
            )
        else:
            extra = [n for n in info.feature_names if n not in names]
            missing = [n for n in names if n not in info.feature_names]
            problems.append(
                "the model's features differ from the spec's: "
                + "; ".join(
                    x
                    for x in (
                        f"not in the spec: {', '.join(extra)}" if extra else "",
                        f"not in the model: {', '.join(missing)}" if missing else "",
                    )
                    if x
                )
            )
    else:
        for f, t in zip(spec.features, info.feature_types or ["float"] * len(names), strict=False):
            model_cat = t == "c"
            if model_cat != (f.type == "category"):
                was = "categorical" if model_cat else f"numeric ({t})"
                problems.append(f"feature {f.name}: the model treats it as {was}, the spec as {f.type}")
            elif model_cat and f.name in info.categories:
                learned = info.categories[f.name]
                if set(learned) != set(f.values):
                    only_model = [v for v in learned if v not in f.values]
                    only_spec = [v for v in f.values if v not in learned]
                    problems.append(
                        f"feature {f.name}: the model learned categories {learned}, the spec allows {list(f.values)}"
                        + (f" (the model has {only_model} the spec lacks)" if only_model else "")
                        + (f" (the spec has {only_spec} the model never saw)" if only_spec else "")
                    )
    kind = spec.model.kind
    if info.kind != kind:
        problems.append(
            f"the model's objective {info.objective} is for {info.kind or 'a kind nightscore does not score'} models; the spec's model.kind is {kind}"
        )
    elif kind == "multiclass" and info.num_class != len(spec.decision.classes or []):
        problems.append(f"the model has {info.num_class} classes; decision.classes lists {len(spec.decision.classes or [])}")
    elif info.num_target > 1 and not info.quantiles:
        problems.append(f"the model predicts {info.num_target} targets; nightscore scores one target (or the quantiles of one)")
    return problems


def coding_notes(spec: Any, info: ModelInfo) -> list[str]:
    """How each categorical feature will be coded for this model (for ``model register``'s output)."""
    notes = []
    for f in spec.features:
        if f.type != "category":
            continue
        if f.name in info.categories:
            order = info.categories[f.name]
            same = order == list(f.values)
            notes.append(
                f"{f.name}: coded as the model learned it ({', '.join(order)})"
                + ("" if same else "; the spec lists them in another order, which does not matter")
            )
        else:
            notes.append(
                f"{f.name}: the model keeps no categories (trained on codes): code i is the spec's values[i] ({', '.join(f.values)}); "
                "make sure that is the order it was trained with"
            )
    return notes


# ---- predictions ------------------------------------------------------------------------------------


def raw_predict(booster: Any, x: np.ndarray, info: ModelInfo) -> np.ndarray:
    """The model's probabilities or values for the input matrix: (n,) for binary and single-value regression,
    (n, classes) for multiclass (``multi:softmax`` models through their margins), (n, quantiles) for quantiles."""
    if info.objective == "multi:softmax":
        margin = np.asarray(booster.inplace_predict(x, predict_type="margin", validate_features=False), dtype=np.float64)
        margin = margin - margin.max(axis=1, keepdims=True)
        e = np.exp(margin)
        return e / e.sum(axis=1, keepdims=True)
    out = booster.inplace_predict(x, validate_features=False)
    if info.objective == "binary:logitraw":
        return 1.0 / (1.0 + np.exp(-np.asarray(out, dtype=np.float64)))
    return out


@dataclass(frozen=True)
class Outputs:
    score: np.ndarray  # float64, one per row
    label: pa.Array  # string, nulls where there is no label
    scores: pa.Array  # string (JSON), nulls where there is nothing more than the score


def median_index(quantiles: tuple[float, ...]) -> int:
    return int(np.argmin([abs(q - 0.5) for q in quantiles]))


def point_values(raw: np.ndarray, quantiles: tuple[float, ...]) -> np.ndarray:
    """A regression model's one value per row (float64): a quantile model's median (or the quantile nearest it)."""
    values = np.asarray(raw)
    if quantiles and values.ndim == 2:
        values = values[:, median_index(quantiles)]
    return values.reshape(len(values)).astype(np.float64)


def _json_objects(keys: list[str], columns: np.ndarray) -> pa.Array:
    """One JSON object per row from the (n, k) ``columns`` under ``keys`` (float32's shortest form: as exact as the model)."""
    parts: list[Any] = []
    for j, key in enumerate(keys):
        parts.append(("{" if j == 0 else ", ") + json.dumps(key) + ": ")
        parts.append(pc.cast(pa.array(np.ascontiguousarray(columns[:, j], dtype=np.float32)), pa.string()))
    parts.append("}")
    return pc.binary_join_element_wise(*parts, "")


def outputs(raw: np.ndarray, spec: Any, info: ModelInfo) -> Outputs:
    """The published columns of one batch from :func:`raw_predict`'s output, vectorised."""
    kind, n = spec.model.kind, len(raw)
    none = pa.nulls(n, pa.string())
    if kind == "binary":
        p = np.asarray(raw, dtype=np.float64)
        d = spec.decision
        label = pc.if_else(pa.array(p >= d.threshold), pa.scalar(d.positive, pa.string()), pa.scalar(d.negative, pa.string()))
        return Outputs(p, label, none)
    if kind == "multiclass":
        classes = list(spec.decision.classes)
        probs = np.asarray(raw).reshape(n, len(classes))
        chosen = probs.argmax(axis=1)
        score = probs[np.arange(n), chosen].astype(np.float64)
        label = pa.DictionaryArray.from_arrays(pa.array(chosen.astype(np.int32)), pa.array(classes, pa.string())).dictionary_decode()
        return Outputs(score, label, _json_objects(classes, probs))
    scores = none
    if info.quantiles and np.ndim(raw) == 2:
        scores = _json_objects([str(float(q)) for q in info.quantiles], np.asarray(raw))
    values = point_values(raw, info.quantiles)
    return Outputs(values, band_labels(values, spec.decision.bands), scores)


def band_labels(values: np.ndarray, bands: list[Any] | None) -> pa.Array:
    """Each value's band label (NULL outside every band, or with no bands)."""
    n = len(values)
    if not bands:
        return pa.nulls(n, pa.string())
    starts = np.array([b.min for b in bands[1:]], dtype=np.float64)
    which = np.searchsorted(starts, values, side="right")
    valid = np.isfinite(values)
    if bands[0].min is not None:
        valid &= values >= bands[0].min
    if bands[-1].max is not None:
        valid &= values < bands[-1].max
    idx = pa.array(which.astype(np.int32), mask=~valid)
    return pa.DictionaryArray.from_arrays(idx, pa.array([b.label for b in bands], pa.string())).dictionary_decode()


# ---- labels -----------------------------------------------------------------------------------------


class LabelError(ValueError):
    """A label that does not fit the kind; the message names the values."""


def encode_labels(column: pa.Array | pa.ChunkedArray, spec: Any, what: str = "label") -> np.ndarray:
    """The labels as XGBoost wants them (float32): 0/1 (binary), the class's index in ``decision.classes``
    (multiclass: by name, or by index when the column is a number), the value (regression). Nulls are refused
    (the caller filters unknown outcomes first); so is anything that does not fit the kind."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if column.null_count:
        raise LabelError(f"{column.null_count} rows have no {what} (NULL)")
    kind = spec.model.kind
    if kind == "multiclass":
        classes = list(spec.decision.classes)
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type) or pa.types.is_dictionary(column.type):
            col = pc.cast(column, pa.string())
            idx = pc.index_in(col, value_set=pa.array(classes, pa.string()))
            if idx.null_count:
                bad = pc.unique(col.filter(pc.is_null(idx))).to_pylist()[:5]
                raise LabelError(f"the {what} holds classes not in decision.classes {classes}: {bad}")
            return idx.to_numpy(zero_copy_only=False).astype(np.float32)
        values = _numbers(column, what)
        ok = (values == np.round(values)) & (values >= 0) & (values < len(classes))
        if not ok.all():
            bad = sorted(set(values[~ok].tolist()))[:5]
            raise LabelError(f"the {what} holds {bad}, not a class number 0..{len(classes) - 1} (or a name in decision.classes)")
        return values.astype(np.float32)
    values = _numbers(column, what)
    if kind == "binary":
        ok = np.isin(values, (0.0, 1.0))
        if not ok.all():
            bad = sorted(set(values[~ok].tolist()))[:5]
            raise LabelError(f"the {what} holds values other than 0 and 1: {bad}")
        return values.astype(np.float32)
    finite = np.isfinite(values)
    if not finite.all():
        raise LabelError(f"the {what} holds {int((~finite).sum())} values that are not finite numbers (NaN or infinity)")
    return values.astype(np.float32)


def _numbers(column: pa.Array, what: str) -> np.ndarray:
    t = column.type
    if pa.types.is_boolean(t):
        column = pc.cast(column, pa.int8())
    elif not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)):
        raise LabelError(f"the {what} is {t}, not a number")
    return np.asarray(pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)


# ---- metrics ----------------------------------------------------------------------------------------


def _r(value: Any) -> float:
    return round(float(value), 6)


def multiclass_metrics(y: np.ndarray, probs: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Log loss, accuracy, macro F1 and each class's recall (by name) and share of the outcomes."""
    y = np.asarray(y, dtype=np.int64)
    n, k = len(y), len(classes)
    if n == 0:
        return {"logloss": None, "accuracy": None, "macro_f1": None, "recall": {}, "share": {}}
    p = np.clip(np.asarray(probs, dtype=np.float64)[np.arange(n), y], 1e-15, 1.0)
    chosen = np.asarray(probs).argmax(axis=1)
    f1s, recall, share = [], {}, {}
    for c in range(k):
        tp = int(((chosen == c) & (y == c)).sum())
        actual, predicted = int((y == c).sum()), int((chosen == c).sum())
        recall[classes[c]] = _r(tp / actual) if actual else None
        share[classes[c]] = _r(actual / n)
        f1s.append(2 * tp / (actual + predicted) if actual + predicted else 0.0)
    return {
        "logloss": _r(-np.mean(np.log(p))),
        "accuracy": _r(np.mean(chosen == y)),
        "macro_f1": _r(np.mean(f1s)),
        "recall": recall,
        "share": share,
    }


def confusion(y: np.ndarray, chosen: np.ndarray, k: int) -> list[list[int]]:
    """Rows: the actual class; columns: the predicted one."""
    m = np.zeros((k, k), dtype=np.int64)
    np.add.at(m, (np.asarray(y, dtype=np.int64), np.asarray(chosen, dtype=np.int64)), 1)
    return m.tolist()


def regression_metrics(y: np.ndarray, raw: np.ndarray, quantiles: tuple[float, ...] = ()) -> dict[str, Any]:
    """RMSE, MAE and R² of the point prediction (a quantile model's median); for quantile models also the mean
    pinball loss over the quantiles and the share of outcomes inside [lowest, highest] quantile (``coverage``,
    against ``coverage_expected``, the quantiles' span)."""
    y = np.asarray(y, dtype=np.float64)
    raw = np.asarray(raw, dtype=np.float64)
    if len(y) == 0:
        return {"rmse": None, "mae": None, "r2": None}
    point = point_values(raw, quantiles)
    err = y - point
    var = float(np.var(y))
    out: dict[str, Any] = {
        "rmse": _r(np.sqrt(np.mean(err**2))),
        "mae": _r(np.mean(np.abs(err))),
        "r2": _r(1 - np.mean(err**2) / var) if var > 0 else None,
        "mean_actual": _r(y.mean()),
        "mean_predicted": _r(point.mean()),
    }
    if quantiles and raw.ndim == 2:
        losses = []
        for j, a in enumerate(quantiles):
            d = y - raw[:, j]
            losses.append(np.mean(np.maximum(a * d, (a - 1) * d)))
        lo, hi = raw[:, 0], raw[:, -1]
        out["pinball"] = _r(np.mean(losses))
        out["coverage"] = _r(np.mean((y >= lo) & (y <= hi)))
        out["coverage_expected"] = _r(quantiles[-1] - quantiles[0])
    return out


def kind_metrics(spec: Any, y: np.ndarray, raw: np.ndarray, info: ModelInfo) -> dict[str, Any]:
    """The kind's metrics of the predictions ``raw`` (:func:`raw_predict`) against the labels ``y`` (:func:`encode_labels`)."""
    kind = spec.model.kind
    if kind == "binary":
        from pipeline.evaluate import classification_metrics

        return classification_metrics(y, np.asarray(raw, dtype=np.float64), spec.decision.threshold)
    if kind == "multiclass":
        return multiclass_metrics(y, np.asarray(raw).reshape(len(y), -1), list(spec.decision.classes))
    return regression_metrics(y, raw, info.quantiles)


def as_number(value: Any) -> float | None:
    """A metric read back from JSON as a float, or None when it is not a number (None, NaN, a bool, a dict)."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) and value == value else None


def headline(kind: str, metrics: dict[str, Any]) -> str:
    """The metrics a person reads first, as one phrase (``train``, ``model list``)."""

    def f(name: str, label: str) -> str | None:
        v = as_number(metrics.get(name))
        return f"{label} {v:.4f}" if v is not None else None

    names = {
        "binary": [("auc", "AUC"), ("logloss", "log loss")],
        "multiclass": [("logloss", "log loss"), ("accuracy", "accuracy"), ("macro_f1", "macro F1")],
        "regression": [("rmse", "RMSE"), ("mae", "MAE"), ("r2", "R²"), ("pinball", "pinball"), ("coverage", "coverage")],
    }[kind]
    parts = [p for p in (f(n, label) for n, label in names) if p]
    return ", ".join(parts) or "no metrics (no labelled rows)"
