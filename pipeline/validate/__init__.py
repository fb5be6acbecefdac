"""Validate: the job's feature contract, as Great Expectations (GX Core 1.x) suites, run on one partition.

The suites are generated in code from the contract and run in an ephemeral GX context (nothing on disk):

- the *schema suite* (column set, each column's type) runs once on the first rows of the partition: a
  Parquet column has one type for all its rows, so its first rows say it for the whole day;
- the *batch suite* (nulls, ranges, allowed categories) runs on each Arrow record batch of the partition
  in turn, so memory holds one batch, never the whole day; GX's pandas engine filters each rule's column
  by boolean indexing, so its transient copies are one batch long;
- the *day suite* (row count) runs once on an index of the day's rows, no columns;
- the *key suite* (entity key not null and unique) runs once on the rows whose key is null or repeated,
  found first by :class:`KeyCheck` on the day's keys alone (a sorted NumPy array for integer keys: 8 bytes
  a row, against about 45 for the key column in pandas under GX); its counts are then those of the day.

In the batch suite strings are pandas categoricals (Arrow dictionary encoding) rather than object columns:
GX checks allowed values with a hash lookup instead of one Python call per value. (GX 1.x's type rule can
match neither categoricals nor pandas 3's ``str`` dtype, which is why types are checked on object columns
in the small schema frame.)
The per-batch GX results are merged into one validation result (saved as JSON and rendered as Data Docs
HTML). The outcome is a per-rule summary: the rule in words, its column, the count and share of rows
that broke it, and a few example entity keys. Policy ``fail`` stops the run on any broken rule; policy
``quarantine`` sets rows that break row-level rules aside (with every reason) and lets the rest through
while their share stays under ``max_bad_ratio``. Table-level rules (schema drift, types, an empty
partition, null keys) always fail the run.

The parts, each a module of this package:

- :mod:`~pipeline.validate.rules`: the contract as rules (the four suites' expectations, the type lists)
  and :func:`schema_diff`, the schema drift in words; no GX;
- :mod:`~pipeline.validate.gx`: the ephemeral GX context (:func:`gx_context`) and Arrow data as the pandas
  frames the suites run on (:func:`to_frame`, :func:`schema_frame`);
- :mod:`~pipeline.validate.runner`: the suites in GX, :class:`KeyCheck`, and the one validation path;
- :mod:`~pipeline.validate.results`: :class:`RuleOutcome` and :class:`ValidationOutcome`, the per-batch
  results merged into the day's, and that result as Data Docs;
- :mod:`~pipeline.validate.policy`: the job's policy applied to the outcome (:func:`apply_policy`), the
  day's rules over a run's shards (:func:`check_day`) and the run's failure (:func:`raise_if_failed`).

There is one validation path, :func:`validate_batches`: a stream of Arrow record batches in, a
:class:`ValidationOutcome` out. :func:`validate_parquet` (a snapshot file, read batch by batch) and
:func:`validate_frame` (a DataFrame: tests, notebooks) only feed it batches, and the one-pass run feeds it
the batches as they are extracted.

Importing this package imports every part, so that preloading ``pipeline.validate`` (a shard's forkserver,
the benchmark) loads all the code a validation runs; GX itself loads on the first :func:`gx_context`.
"""

from __future__ import annotations

from pipeline.validate.gx import _gx_context, gx_context, schema_frame, to_frame
from pipeline.validate.policy import apply_policy, bad_rows_by_key, check_day, raise_if_failed
from pipeline.validate.results import SAMPLE_KEYS, RuleOutcome, ValidationOutcome, merge_results, render_data_docs
from pipeline.validate.rules import (
    TYPE_LISTS,
    Rule,
    build_day_rules,
    build_key_rules,
    build_rules,
    build_schema_rules,
    schema_diff,
)
from pipeline.validate.runner import KeyCheck, _suites, validate_batches, validate_frame, validate_parquet

__all__ = [
    "SAMPLE_KEYS",
    "TYPE_LISTS",
    "KeyCheck",
    "Rule",
    "RuleOutcome",
    "ValidationOutcome",
    "_gx_context",
    "_suites",
    "apply_policy",
    "bad_rows_by_key",
    "build_day_rules",
    "build_key_rules",
    "build_rules",
    "build_schema_rules",
    "check_day",
    "gx_context",
    "merge_results",
    "raise_if_failed",
    "render_data_docs",
    "schema_diff",
    "schema_frame",
    "to_frame",
    "validate_batches",
    "validate_frame",
    "validate_parquet",
]
