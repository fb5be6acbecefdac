"""The GX Core side of validation: the ephemeral context, and Arrow data as the pandas frames GX runs on.

Importing this module (as importing :mod:`pipeline.validate` does) quiets GX before it is first imported:
no analytics, and none of the INFO lines it logs while it registers its functions and metrics.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
# GX logs one INFO line per public function as it imports ("Skipping registering function ..."): about 200
# lines that buried every Airflow task log. Its warnings and errors still show.
logging.getLogger("great_expectations._docs_decorators").setLevel(logging.WARNING)
# and one INFO line per metric it declares twice ("Multiple declarations of metric ..."), in every task log
logging.getLogger("great_expectations.expectations.registry").setLevel(logging.WARNING)


def gx_context() -> Any:
    """A fresh ephemeral GX context (nothing on disk), without progress bars or batch fingerprints.

    The first call also builds GX's registry of expectations, once per process."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    for name in ("great_expectations", "great_expectations.data_context.types.base"):
        logging.getLogger(name).setLevel(logging.WARNING)
    from great_expectations.execution_engine import pandas_execution_engine

    # GX fingerprints each in-memory batch smaller than this many bytes by hashing every row, only to
    # note the hash in the result's batch markers: 0.15 s per 1,000,000 rows of 24 columns. The run
    # already records the sha256 of features.parquet, so batches are not fingerprinted.
    pandas_execution_engine.HASH_THRESHOLD = 0
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    return ctx


_gx_context = gx_context  # the name callers knew first (pipeline.run preloads GX's registry through it)


def _is_string(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def to_frame(data: pa.RecordBatch | pa.Table) -> pd.DataFrame:
    """Arrow → pandas for the batch suite, without object columns: strings dictionary-encoded (categoricals).

    One block per column (``split_blocks``): numeric columns without nulls stay Arrow's memory instead of
    being copied into one 2-D block (1,000,000 × 24: 0.05 s against 0.06-0.4 s, and no second copy)."""
    cols = [pc.dictionary_encode(col) if _is_string(f.type) else col for f, col in zip(data.schema, data.columns, strict=True)]
    table = pa.Table.from_arrays(cols, names=data.schema.names)
    return table.to_pandas(types_mapper={pa.bool_(): pd.BooleanDtype()}.get, split_blocks=True)


def schema_frame(data: pa.RecordBatch | pa.Table) -> pd.DataFrame:
    """Arrow → pandas for the schema suite: strings as object columns, the dtype GX's type rule can match."""
    df = data.to_pandas(types_mapper={pa.bool_(): pd.BooleanDtype()}.get)
    strings = [f.name for f in data.schema if _is_string(f.type)]
    return df.assign(**{c: df[c].astype(object) for c in strings}) if strings else df
