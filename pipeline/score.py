"""Score: the partition snapshot through the resolved XGBoost model, batch by batch, into ``predictions.parquet``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline import kinds
from pipeline.features import Coding, to_matrix, value_sets
from pipeline.jobs import JobSpec
from pipeline.keys import entity_ids, key_array
from pipeline.registry import ModelVersion
from pipeline.storage import stream_parquet

PREDICTION_SCHEMA = pa.schema(
    [
        ("job", pa.string()),
        ("ds", pa.date32()),
        ("entity_id", pa.string()),
        ("score", pa.float64()),
        ("label", pa.string()),
        ("model_name", pa.string()),
        ("model_version", pa.int32()),
        ("run_id", pa.string()),
        ("scored_at", pa.timestamp("us", tz="UTC")),
        ("scores", pa.string()),  # JSON: every class's probability or every quantile (pipeline.kinds), else null
    ]
)


@dataclass(frozen=True)
class Scored:
    uri: str
    rows: int
    score_mean: float
    drift_counts: dict[str, Any] | None = None  # the scored rows in the drift reference's bins (pipeline.drift)
    reasons_uri: str | None = None  # explain: the rows' top reasons (pipeline.explain), beside the predictions
    explain: dict[str, Any] | None = None  # explain: the shard's summed |contribution| per feature


def score_batch(
    booster: Any,
    batch: pa.RecordBatch | pa.Table,
    spec: JobSpec,
    threads: int,
    buffer: np.ndarray | None = None,
    info: kinds.ModelInfo | None = None,
    coding: Coding | None = None,
) -> np.ndarray:
    """The model's raw output for one batch (:func:`pipeline.kinds.raw_predict`), with the model's own thread
    count set explicitly and categories coded as the model learned them."""
    booster.set_param({"nthread": threads})
    info = info or kinds.model_info(booster)
    if coding is None:
        coding = value_sets(kinds.coding(spec, info))
    return kinds.raw_predict(booster, to_matrix(batch, spec, buffer, coding), info)


def _repeat(value: Any, n: int, type_: pa.DataType) -> pa.Array:
    """``value`` n times, without building a Python list."""
    return pa.array([value], type_).take(pa.array(np.zeros(n, dtype=np.int32)))


def predictions_batch(
    batch: pa.RecordBatch,
    out: kinds.Outputs,
    spec: JobSpec,
    ds: date,
    mv: ModelVersion,
    run_id: str,
    scored_at: datetime,
    ids: pa.Array | None = None,
) -> pa.RecordBatch:
    n = batch.num_rows
    ids = entity_ids(batch, spec.key_columns) if ids is None else ids
    return pa.record_batch(
        [
            _repeat(spec.name, n, pa.string()),
            pa.array(np.full(n, ds.toordinal() - date(1970, 1, 1).toordinal(), dtype=np.int32), pa.date32()),
            ids,
            pa.array(out.score),
            out.label,
            _repeat(mv.name, n, pa.string()),
            pa.array(np.full(n, mv.version, dtype=np.int32)),
            _repeat(run_id, n, pa.string()),
            pa.array(np.full(n, np.datetime64(scored_at.replace(tzinfo=None), "us"))).cast(pa.timestamp("us", tz="UTC")),
            out.scores,
        ],
        schema=PREDICTION_SCHEMA,
    )


def _batches(path: Path, batch_rows: int, drop_keys: Iterable[Any], columns: list[str]) -> Iterable[pa.RecordBatch]:
    """The snapshot's rows less those whose key is in ``drop_keys`` (the key's own values, or text keys)."""
    drop = list(drop_keys)
    pf = stream_parquet(path)
    key_type = pf.schema_arrow.field(columns[0]).type if len(columns) == 1 else pa.string()
    drop_arr = pa.array(drop, type=key_type) if drop else None
    for batch in pf.iter_batches(batch_size=batch_rows):
        if drop_arr is not None:
            batch = batch.filter(pc.invert(pc.is_in(key_array(batch, columns), value_set=drop_arr)))
        yield batch


def score(
    spec: JobSpec,
    ds: date,
    features_path: Path,
    booster: Any,
    mv: ModelVersion,
    run_id: str,
    out: Path,
    *,
    threads: int,
    batch_rows: int,
    drop_keys: Iterable[Any] = (),
    reference: dict[str, Any] | None = None,
) -> Scored:
    """Score every row of ``features_path`` except ``drop_keys`` (quarantined) into the local file ``out``
    (``Scored.uri`` is its path until the caller stores it). With the model's feature ``reference``, the
    scored rows are also counted into its bins for the day's drift. A job that explains also writes each
    row's top reasons to ``reasons.parquet`` beside ``out`` (:mod:`pipeline.explain`)."""
    from contextlib import ExitStack

    from pipeline.drift import DriftCounter
    from pipeline.explain import REASONS_SCHEMA, Explainer

    counter = DriftCounter(reference) if reference else None
    scored_at = datetime.now(UTC)
    rows, total = 0, 0.0
    # dictionary pages for the repeated strings; entity ids are all different (a dictionary of them is
    # built, then dropped: 0.3 s against 0.19 s to write 1,000,000 rows)
    strings = [f.name for f in PREDICTION_SCHEMA if pa.types.is_string(f.type) and f.name not in ("entity_id", "scores")]
    buffer = np.empty((batch_rows, len(spec.features)), dtype=np.float32)  # the model's input, reused batch after batch
    info = kinds.model_info(booster)
    coding = value_sets(kinds.coding(spec, info))
    explainer = Explainer(spec, info, threads) if spec.explain else None
    reasons_out = out.with_name("reasons.parquet")
    with ExitStack() as files:
        writer = files.enter_context(pq.ParquetWriter(out, PREDICTION_SCHEMA, compression="lz4", use_dictionary=strings))
        why = (
            files.enter_context(pq.ParquetWriter(reasons_out, REASONS_SCHEMA, compression="lz4", use_dictionary=["job", "run_id"]))
            if explainer
            else None
        )
        booster.set_param({"nthread": threads})
        for batch in _batches(features_path, batch_rows, drop_keys, spec.key_columns):
            if batch.num_rows == 0:
                continue
            x = to_matrix(batch, spec, buffer, coding)
            raw = kinds.raw_predict(booster, x, info)
            result = kinds.outputs(raw, spec, info)
            if counter is not None:
                counter.add(batch)
            ids = entity_ids(batch, spec.key_columns)
            writer.write_batch(predictions_batch(batch, result, spec, ds, mv, run_id, scored_at, ids))
            if explainer is not None and why is not None:
                why.write_batch(explainer.batch(booster, x, batch, raw, ids, ds, run_id))
            rows += batch.num_rows
            total += float(result.score.sum())
    return Scored(
        uri=str(out),
        rows=rows,
        score_mean=(total / rows) if rows else float("nan"),
        drift_counts=counter.to_json() if counter else None,
        reasons_uri=str(reasons_out) if explainer else None,
        explain=explainer.summary() if explainer else None,
    )
