"""Turning Arrow data into the model's input matrix, in feature-contract order.

Categorical features become their code (unknown or null → NaN), which XGBoost reads as a category because
the model is trained with ``feature_types='c'``. The code is the value's position in the model's own
categories where the model stores them (XGBoost 3.1+, :func:`pipeline.kinds.coding`), else in the
contract's ``values`` list: the order a spec lists its values in can never change a stored model's score.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.jobs import Feature, JobSpec


def feature_types(spec: JobSpec) -> list[str]:
    return ["c" if f.type == "category" else "q" for f in spec.features]


Coding = dict[str, pa.Array]


def value_sets(order: dict[str, list[str]]) -> Coding:
    """Each categorical feature's values as an Arrow array, in code order (from :func:`pipeline.kinds.coding`)."""
    return {name: pa.array(values, pa.string()) for name, values in order.items()}


def _column(data: pa.Table | pa.RecordBatch, f: Feature, coding: Coding | None = None) -> np.ndarray:
    col = data.column(f.name)
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if f.type == "category":
        value_set = coding[f.name] if coding and f.name in coding else pa.array(f.values, pa.string())
        codes = pc.index_in(pc.cast(col, pa.string()) if not pa.types.is_string(col.type) else col, value_set=value_set)
        return codes.to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    if pa.types.is_boolean(col.type):
        col = pc.cast(col, pa.float32())
    # to_numpy turns nulls into NaN for floating types; cast ints to float first
    return pc.cast(col, pa.float32(), safe=False).to_numpy(zero_copy_only=False)


def to_matrix(data: pa.Table | pa.RecordBatch, spec: JobSpec, buffer: np.ndarray | None = None, coding: Coding | None = None) -> np.ndarray:
    """A C-contiguous float32 matrix with one column per feature, in contract order.

    ``buffer`` (float32, at least as many rows) is filled and a view of it returned: a caller that
    converts batch after batch reuses memory the process has already touched (1,000,000 rows in four
    batches: 0.09-0.12 s, against 0.12-0.45 s with a fresh matrix per batch)."""
    shape = (data.num_rows, len(spec.features))
    if buffer is not None and buffer.dtype == np.float32 and buffer.shape[0] >= shape[0] and buffer.shape[1] == shape[1]:
        out = buffer[: shape[0]]
    else:
        out = np.empty(shape, dtype=np.float32)
    for j, f in enumerate(spec.features):
        out[:, j] = _column(data, f, coding)
    return out


def training_frame(data: pa.Table | pa.RecordBatch, spec: JobSpec) -> Any:
    """The rows as the DataFrame ``nightscore train`` trains on: numbers as float32, each category feature as a
    pandas categorical over the spec's ``values`` in their order, so that the model stores its categories
    (XGBoost 3.1+) and scores by them whatever order a later spec lists them in."""
    import pandas as pd

    m = to_matrix(data, spec)
    cols: dict[str, Any] = {}
    for j, f in enumerate(spec.features):
        if f.type == "category":
            codes = np.where(np.isnan(m[:, j]), -1, m[:, j]).astype(np.int32)
            cols[f.name] = pd.Categorical.from_codes(codes, categories=list(f.values or []))
        else:
            cols[f.name] = m[:, j]
    return pd.DataFrame(cols)
