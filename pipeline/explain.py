"""Why a row scored what it did: each published row's top-K features by XGBoost's own contributions.

XGBoost computes per-row feature contributions itself (``Booster.predict(..., pred_contribs=True)``): exact
tree SHAP values, or with ``approx_contribs=True`` Saabas' path attribution (about 3x the cost of a predict on
this machine; exact tree SHAP 100x and more). They are in the model's margin: log-odds for a binary or
multiclass model (the chosen class's), the raw value for regression, and for every row

    base_value + sum(all features' contributions) == the row's margin

A job spec's ``explain: {top, method, max_rows}`` makes each shard write ``reasons.parquet`` beside its
predictions: per row the explained class (multiclass), the base value, the top-K reasons as JSON
``[{"feature", "value", "contribution"}, ...]`` (largest absolute contribution first; ``value`` as the model
saw it: the number, the category's name, null where missing) and ``rest`` (every other feature's contributions together, so that the row still adds up). They are
COPYed into the run's ``_reasons`` loading table and published with the day, in the same swap, into
``prediction_reasons`` (sql/migrations/015). The JSON is built by Arrow's string kernels, not row by row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline import kinds
from pipeline.jobs import JobSpec

REASONS_SCHEMA = pa.schema(
    [
        ("job", pa.string()),
        ("ds", pa.date32()),
        ("entity_id", pa.string()),
        ("explained_class", pa.string()),
        ("base_value", pa.float64()),
        ("reasons", pa.string()),  # JSON, loaded as jsonb
        ("rest", pa.float64()),
        ("run_id", pa.string()),
    ]
)


def contributions(
    booster: Any, x: np.ndarray, info: kinds.ModelInfo, *, method: str, threads: int, chosen: np.ndarray | None = None
) -> np.ndarray:
    """Per row, each feature's contribution and (last column) the base value: (n, features + 1), float32.

    Multiclass: the contributions to the chosen class's margin (``chosen``: each row's class index); a quantile
    model's: to the quantile it publishes as its value (the median, or the quantile nearest it)."""
    import xgboost as xgb

    booster.set_param({"nthread": threads})
    types = booster.feature_types or ["q"] * x.shape[1]
    dm = xgb.DMatrix(x, feature_types=types, enable_categorical="c" in types, nthread=threads, missing=np.nan)
    c = booster.predict(dm, pred_contribs=True, approx_contribs=method == "approx", validate_features=False)
    if c.ndim == 3:  # (n, outputs, features + 1)
        if chosen is None:
            chosen = np.full(c.shape[0], kinds.median_index(info.quantiles) if info.quantiles else 0, dtype=np.int64)
        c = c[np.arange(c.shape[0]), chosen, :]
    return np.ascontiguousarray(c, dtype=np.float32)


def top_k(contribs: np.ndarray, k: int) -> np.ndarray:
    """Each row's ``k`` feature indexes with the largest absolute contribution, largest first (ties: the
    feature listed first in the contract). ``contribs`` without the base value column."""
    k = min(k, contribs.shape[1])
    size = np.abs(contribs)
    if k <= 5:  # a few reasons: the largest, then the next largest, ... (argmax takes the first of equals)
        rows = np.arange(len(size))
        out = np.empty((len(size), k), dtype=np.int64)
        for r in range(k):
            out[:, r] = size.argmax(axis=1)
            size[rows, out[:, r]] = -1.0
        return out
    if k < contribs.shape[1]:  # the k largest first (a partition), then only those sorted
        picked = np.argpartition(-size, k - 1, axis=1)[:, :k]
        picked.sort(axis=1)  # by feature index: the tie-break
    else:
        picked = np.broadcast_to(np.arange(k), size.shape).copy()
    by_size = np.take_along_axis(size, picked, axis=1)
    order = np.argsort(-by_size, axis=1, kind="stable")
    return np.ascontiguousarray(np.take_along_axis(picked, order, axis=1))


def _json_value(col: pa.Array) -> pa.Array:
    """A column's values as JSON literals: numbers, true/false, quoted strings; null (NaN and infinities too)."""
    t = col.type
    if pa.types.is_boolean(t):
        out = pc.if_else(col, "true", "false")
    elif pa.types.is_integer(t):
        out = pc.cast(col, pa.string())
    elif pa.types.is_floating(t):
        finite = pc.is_finite(col)
        out = pc.if_else(finite, pc.cast(col, pa.string()), pa.scalar(None, pa.string()))
    else:
        text = pc.cast(col, pa.string())
        text = pc.replace_substring(text, "\\", "\\\\")
        text = pc.replace_substring(text, '"', '\\"')
        out = pc.binary_join_element_wise('"', text, '"', "")
    return pc.fill_null(out, "null")


def _number(values: np.ndarray) -> pa.Array:
    """Contributions as JSON numbers: XGBoost's float32, written in the fewest digits that read back to it."""
    return pc.cast(pa.array(values.astype(np.float32)), pa.string())


@dataclass
class Explainer:
    """A shard's explanations, batch by batch, with the day's mean absolute contribution per feature."""

    spec: JobSpec
    info: kinds.ModelInfo
    threads: int
    rows: int = 0
    abs_sum: np.ndarray | None = None
    seconds: float = 0.0
    _names: pa.Array = field(init=False)

    def __post_init__(self) -> None:
        from pipeline.features import value_sets

        self._names = pa.array(self.spec.feature_names, pa.string())
        self.abs_sum = np.zeros(len(self.spec.features), dtype=np.float64)
        self._categories = value_sets(kinds.coding(self.spec, self.info))

    def _values(self, x: np.ndarray, idx: np.ndarray) -> pa.Array:
        """Each row's value of its feature ``idx[row]`` as a JSON literal, from the model's input matrix (the
        values as the model saw them: numbers, a category's code turned back into its name, null where
        missing). Only the chosen features are formatted: one group of rows per feature."""
        n = len(idx)
        rows = np.arange(n)
        picked = x[rows, idx]
        order = np.argsort(idx, kind="stable")
        bounds = np.searchsorted(idx[order], np.arange(len(self.spec.features) + 1))
        pieces: list[pa.Array] = []
        for j, f in enumerate(self.spec.features):
            at = order[bounds[j] : bounds[j + 1]]
            if not len(at):
                continue
            v = picked[at]
            missing = np.isnan(v)
            if f.type == "category":
                codes = pa.array(np.where(missing, 0, v).astype(np.int32), mask=missing)
                text = _json_value(pc.take(self._categories.get(f.name, pa.array(f.values or [], pa.string())), codes))
            elif f.type == "bool":
                text = _json_value(pa.array(v != 0, mask=missing))
            elif f.type == "int":
                text = _json_value(pa.array(np.where(missing, 0, v).astype(np.int64), mask=missing))
            else:
                text = _json_value(pa.array(v, mask=missing))
            pieces.append(text)
        inverse = np.empty(n, dtype=np.int64)
        inverse[order] = rows
        return pc.take(pa.concat_arrays(pieces), pa.array(inverse)) if pieces else pa.nulls(0, pa.string())

    def batch(
        self, booster: Any, x: np.ndarray, batch: pa.RecordBatch, raw: np.ndarray, ids: pa.Array, ds: date, run_id: str
    ) -> pa.RecordBatch:
        import time

        assert self.spec.explain is not None
        started = time.perf_counter()
        chosen = np.asarray(raw).argmax(axis=1) if self.spec.kind == "multiclass" else None
        c = contributions(booster, x, self.info, method=self.spec.explain.method, threads=self.threads, chosen=chosen)
        feats, base = c[:, :-1], c[:, -1]
        top = top_k(feats, self.spec.explain.top)
        n = len(base)
        rows = np.arange(n)
        parts: list[Any] = ["["]
        picked_sum = np.zeros(n, dtype=np.float64)
        for r in range(top.shape[1]):
            idx = top[:, r]
            contrib = feats[rows, idx]
            picked_sum += contrib
            index = pa.array(idx.astype(np.int32))
            parts += [
                '{"feature":"' if r == 0 else ',{"feature":"',
                pc.take(self._names, index),
                '","value":',
                self._values(x, idx),
                ',"contribution":',
                _number(contrib),
                "}",
            ]
        parts.append("]")
        reasons = pc.binary_join_element_wise(*parts, "")
        self.abs_sum += np.abs(feats).sum(axis=0, dtype=np.float64)
        self.rows += n
        if self.spec.kind == "multiclass":
            classes = pa.array(self.spec.decision.classes or [], pa.string())
            explained = pc.take(classes, pa.array(chosen))
        else:
            explained = pa.nulls(n, pa.string())
        rest = feats.sum(axis=1, dtype=np.float64) - picked_sum
        out = pa.record_batch(
            [
                pa.array([self.spec.name] * 1, pa.string()).take(pa.array(np.zeros(n, dtype=np.int32))),
                pa.array(np.full(n, ds.toordinal() - date(1970, 1, 1).toordinal(), dtype=np.int32), pa.date32()),
                ids,
                explained,
                pa.array(base.astype(np.float64)),
                reasons,
                pa.array(rest),
                pa.array([run_id], pa.string()).take(pa.array(np.zeros(n, dtype=np.int32))),
            ],
            schema=REASONS_SCHEMA,
        )
        self.seconds += time.perf_counter() - started
        return out

    def summary(self) -> dict[str, Any]:
        """What the run report needs: rows explained and each feature's summed |contribution| (shards add up)."""
        assert self.abs_sum is not None
        return {
            "rows": self.rows,
            "abs_sum": {f: float(v) for f, v in zip(self.spec.feature_names, self.abs_sum, strict=True)},
            "seconds": round(self.seconds, 3),
            "method": self.spec.explain.method if self.spec.explain else None,
        }


def merge_summaries(parts: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """The day's mean absolute contribution per feature, from the shards' summaries (None if none explained)."""
    found = [p for p in parts if p]
    if not found:
        return None
    rows = sum(p["rows"] for p in found)
    sums: dict[str, float] = {}
    for p in found:
        for f, v in p["abs_sum"].items():
            sums[f] = sums.get(f, 0.0) + v
    return {
        "rows": rows,
        "mean_abs": {f: (v / rows if rows else 0.0) for f, v in sums.items()},
        "seconds": round(sum(p.get("seconds", 0.0) for p in found), 3),
        "method": found[0].get("method"),
    }


def reference(booster: Any, x: np.ndarray, spec: JobSpec, info: kinds.ModelInfo, threads: int) -> dict[str, Any]:
    """The training reference of what drives the scores: each feature's mean |contribution| on the holdout
    (approx; the chosen class's for multiclass), kept in the model's manifest."""
    chosen = None
    if spec.kind == "multiclass":
        chosen = np.asarray(kinds.raw_predict(booster, x, info)).argmax(axis=1)
    c = contributions(booster, x, info, method="approx", threads=threads, chosen=chosen)
    mean_abs = np.abs(c[:, :-1]).mean(axis=0, dtype=np.float64) if len(c) else np.zeros(c.shape[1] - 1)
    return {"rows": int(len(c)), "mean_abs": {f: float(v) for f, v in zip(spec.feature_names, mean_abs, strict=True)}}


def shift(day: dict[str, Any] | None, ref: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Per feature: the day's mean |contribution|, the training reference's, and each one's share of the total
    (a feature whose share moved is driving the scores differently: a drift signal of its own)."""
    if not day:
        return []
    d = day.get("mean_abs") or {}
    r = (ref or {}).get("mean_abs") or {}
    d_total = sum(d.values()) or 1.0
    r_total = sum(r.values()) or 1.0
    out = []
    for f, v in d.items():
        ref_v = r.get(f)
        out.append(
            {
                "feature": f,
                "day": v,
                "reference": ref_v,
                "day_share": v / d_total,
                "reference_share": (ref_v / r_total) if ref_v is not None else None,
                "share_change": (v / d_total - ref_v / r_total) if ref_v is not None else None,
            }
        )
    return sorted(out, key=lambda row: -row["day"])


@dataclass(frozen=True)
class RowReasons:
    job: str
    ds: date
    entity_id: str
    score: float
    label: str | None
    model_name: str
    model_version: int
    run_id: str
    scored_at: datetime
    explained_class: str | None
    base_value: float
    rest: float
    reasons: list[dict[str, Any]]

    @property
    def margin(self) -> float:
        return self.base_value + self.rest + sum(float(r["contribution"]) for r in self.reasons)


def entity_key(spec: JobSpec, given: str) -> str:
    """The text key ``predictions.entity_id`` holds for what a person typed: the key itself (``42``, or
    ``8|7`` for a key of several columns), or its columns by name (``store_id=8,customer_id=7``)."""
    from pipeline.errors import UsageError

    columns = spec.key_columns
    if "=" not in given:
        return given
    parts = dict(p.split("=", 1) for p in given.split(",") if "=" in p)
    parts = {k.strip(): v.strip() for k, v in parts.items()}
    missing = [c for c in columns if c not in parts]
    extra = [k for k in parts if k not in columns]
    if missing or extra:
        raise UsageError(
            f"--entity {given!r} does not name the key of job {spec.name} ({', '.join(columns)})",
            where="--entity",
            fix="give every key column once: --entity " + ",".join(f"{c}=VALUE" for c in columns),
        )
    return "|".join(parts[c].replace("%", "%25").replace("|", "%7C") for c in columns)


def row_reasons(eng: Any, spec: JobSpec, ds: date, entity: str) -> RowReasons:
    """One published row's reasons, with its prediction (both of the day's published run)."""
    from pipeline import db
    from pipeline.errors import NightscoreError
    from pipeline.keys import describe_key

    key = entity_key(spec, entity)
    with eng.connect() as conn:
        row = conn.execute(db.query("explain_row"), {"job": spec.name, "ds": ds, "entity": key}).mappings().first()
        if row is None:
            published = conn.execute(db.query("explained_day"), {"job": spec.name, "ds": ds}).mappings().first()
    who = describe_key(key, spec.key_columns)
    if row is None:
        if published is None or not published["rows"]:
            raise NightscoreError(
                f"job {spec.name} has no published day {ds}",
                where="predictions",
                fix=f"score it first: nightscore score --job {spec.name} --ds {ds}",
            )
        raise NightscoreError(
            f"job {spec.name}, {ds}: no published row has the key {who}",
            where=f"predictions ({published['rows']:,} rows that day)",
            fix="check the key (a key of several columns: --entity " + ",".join(f"{c}=VALUE" for c in spec.key_columns) + ")",
        )
    if row["reasons"] is None:
        why = (
            "the job's spec has no explain section"
            if not spec.explain
            else f"the day's run did not explain it (explain.max_rows: {spec.explain.max_rows}, or the day was scored before explain was set)"
        )
        raise NightscoreError(
            f"job {spec.name}, {ds}: the row {who} has no reasons: {why}",
            where="prediction_reasons",
            fix=f"add explain: {{top: 3}} to the job spec (or raise max_rows) and score the day again: nightscore score --job {spec.name} --ds {ds}",
        )
    reasons = row["reasons"] if isinstance(row["reasons"], list) else json.loads(row["reasons"])
    return RowReasons(
        job=spec.name,
        ds=ds,
        entity_id=key,
        score=float(row["score"]),
        label=row["label"],
        model_name=row["model_name"],
        model_version=int(row["model_version"]),
        run_id=str(row["run_id"]),
        scored_at=row["scored_at"],
        explained_class=row["explained_class"],
        base_value=float(row["base_value"]),
        rest=float(row["rest"]),
        reasons=reasons,
    )
