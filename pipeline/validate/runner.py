"""Running the suites: the one validation path, from Arrow record batches to a :class:`ValidationOutcome`.

:func:`validate_batches` streams the partition's batches through the batch suite one at a time and runs the
schema, day and key suites once; :func:`validate_parquet` (a snapshot file) and :func:`validate_frame` (a
DataFrame: tests, notebooks) only feed it batches. :class:`_Suites` holds the four GX suites in one ephemeral
context; :class:`KeyCheck` keeps the day's entity keys small and finds the null and repeated ones.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.jobs import JobSpec
from pipeline.keys import key_column, with_key
from pipeline.storage import stream_parquet
from pipeline.validate.gx import gx_context, schema_frame, to_frame
from pipeline.validate.policy import apply_policy, bad_rows_by_key
from pipeline.validate.results import SAMPLE_KEYS, ValidationOutcome, _outcomes, _trim, merge_results, render_data_docs
from pipeline.validate.rules import Rule, build_day_rules, build_key_rules, build_rules, build_schema_rules


class _Suites:
    """The two suites in one ephemeral GX context, with each rule's words and level by index."""

    SCHEMA, BATCH, DAY, KEYS = 0, 1, 2, 3

    def __init__(self, spec: JobSpec, schema_rules: list[Rule], rules: list[Rule], day_rules: list[Rule], key_rules: list[Rule]) -> None:
        import great_expectations as gx
        import great_expectations.expectations as gxe

        self.ctx = gx_context()
        self.source = self.ctx.data_sources.add_pandas("nightscore")
        self.batch_def = self.source.add_dataframe_asset(spec.name).add_batch_definition_whole_dataframe("partition")
        self.meta: dict[int, tuple[str, bool]] = {}
        self.suites = []
        i = 0
        for name, group in (("schema", schema_rules), ("batch", rules), ("day", day_rules), ("keys", key_rules)):
            expectations = []
            for cls_name, kwargs, words, row_level in group:
                expectations.append(getattr(gxe, cls_name)(**kwargs, meta={"nightscore_rule": i}))
                self.meta[i] = (words, row_level)
                i += 1
            # given whole to the suite, then the suite to the context: add_expectation compares each new
            # rule with every earlier one, and a saved suite re-serialises itself on every add (both
            # quadratic: 0.45 s for the bench's 73 rules, against 0.03 s)
            suite = gx.ExpectationSuite(name=f"{spec.name}_contract_{name}", expectations=expectations)
            if len(suite.expectations) != len(expectations):  # the constructor logs and skips an invalid one
                raise RuntimeError(f"GX accepted {len(suite.expectations)} of the {len(expectations)} {name} rules")
            self.suites.append(self.ctx.suites.add(suite))

    def run(self, which: int, df: pd.DataFrame, key: str | None) -> Any:
        result_format: dict[str, Any] = {"result_format": "COMPLETE", "partial_unexpected_count": SAMPLE_KEYS}
        if key and key in df.columns:
            result_format["unexpected_index_column_names"] = [key]
        result = self.batch_def.get_batch(batch_parameters={"dataframe": df}).validate(self.suites[which], result_format=result_format)
        # GX's execution engine keeps every batch it loaded in its batch cache and every computed metric
        # (whole boolean columns included) in its metric cache; with several batches a day that held
        # each batch's data to the end. Empty both after each run.
        engine = self.source.get_execution_engine()
        engine.batch_manager.reset_batch_cache()
        cache = getattr(engine, "_metric_cache", None)
        if isinstance(cache, dict):
            cache.clear()
        return result


def validate_batches(
    spec: JobSpec, schema: pa.Schema, batches: Iterable[pa.RecordBatch], *, render: bool = True, whole_day: bool = True
) -> ValidationOutcome:
    """Apply the contract and the job's policy to a partition given as Arrow record batches.

    With ``whole_day=False`` (one shard of several) the day's rules (the row count, the share of bad rows)
    are left to :func:`check_day`, over every shard; a shard with bad rows under ``quarantine`` sets them
    aside whatever their share."""
    columns = spec.key_columns
    key = key_column(columns) if all(c in schema.names for c in columns) else None
    keys = KeyCheck(pa.string() if len(columns) > 1 else schema.field(columns[0]).type) if key else None
    results, rows = [], 0
    head: pa.RecordBatch | pa.Table = schema.empty_table()
    suites: _Suites | None = None
    for batch in batches:
        if suites is None:
            # a copy of the first rows: a slice would keep the whole first batch alive to the end
            head = batch.take(pa.array(range(min(100, batch.num_rows)), pa.int32()))
            suites = _suites(spec, schema, head, key, whole_day)
        rows += batch.num_rows
        if keys is not None:
            batch = with_key(batch, columns)  # a key of several columns: its text key beside them
            keys.add(batch.column(key))
        results.append(suites.run(suites.BATCH, to_frame(batch), key))
    if suites is None:  # an empty partition: every suite still runs, on no rows
        suites = _suites(spec, schema, head, key, whole_day)
        results.append(suites.run(suites.BATCH, to_frame(schema.empty_table()), key))
    schema_result = suites.run(suites.SCHEMA, schema_frame(head), key)
    day_result = suites.run(suites.DAY, pd.DataFrame(index=pd.RangeIndex(rows)), None)
    if keys is not None and key is not None:
        keys.finish()
        key_result = suites.run(suites.KEYS, pd.DataFrame({key: keys.suspects().to_pandas()}), key)
        keys.restate(key_result, rows)
    else:
        key_result = suites.run(suites.KEYS, pd.DataFrame(index=pd.RangeIndex(rows)), None)
    merged = merge_results(schema_result, results, day_result, key_result)
    rules = _outcomes(spec, suites, merged, rows, schema)
    reasons = bad_rows_by_key(rules)
    bad_rows = keys.rows_of(list(reasons)) if reasons and keys is not None else 0  # rows: each row of a repeated key
    outcome = apply_policy(spec, rules, rows, _trim(merged.to_json_dict()), reasons, bad_rows, whole_day=whole_day)
    if render:
        outcome.html = render_data_docs(merged)
    return outcome


def _suites(spec: JobSpec, schema: pa.Schema, head: pa.RecordBatch | pa.Table, key: str | None, whole_day: bool = True) -> _Suites:
    dtypes = dict(schema_frame(head).dtypes)
    return _Suites(
        spec,
        build_schema_rules(spec, dtypes),
        build_rules(spec, dtypes),
        build_day_rules(spec, whole_day),
        build_key_rules(spec, key is not None),
    )


class KeyCheck:
    """The day's entity keys, kept small, to find the null and repeated ones after the last batch.

    Integer keys go into one NumPy array (8 bytes a row), sorted in place at the end: a repeated key is then
    next to itself. Other keys (strings) stay Arrow arrays and are sorted by Arrow. Only the rows with a null
    or repeated key (the *suspects*) then go to GX's key suite, whose counts :meth:`restate` makes those of
    the whole day: the same result as the suite run on every key, without a pandas copy of the day's keys."""

    def __init__(self, type_: pa.DataType) -> None:
        self.type = type_
        self.numeric = pa.types.is_integer(type_) and type_ != pa.uint64()  # fits an int64
        self.nulls = 0
        self._ints = np.empty(0, dtype=np.int64)
        self._n = 0
        self._chunks: list[pa.Array] = []
        self._sorted: Any = None
        self._repeated: Any = None

    def add(self, column: pa.Array | pa.ChunkedArray) -> None:
        self.nulls += column.null_count
        if column.null_count:
            column = pc.drop_null(column)
        if not self.numeric:
            self._chunks.extend(column.chunks if isinstance(column, pa.ChunkedArray) else [column])
            return
        values = column.to_numpy()
        if self._n + len(values) > len(self._ints):  # grow by half again: amortised, like a list
            grown = np.empty(max(self._n + len(values), len(self._ints) * 3 // 2, 1024), dtype=np.int64)
            grown[: self._n] = self._ints[: self._n]
            self._ints = grown
        self._ints[self._n : self._n + len(values)] = values
        self._n += len(values)

    def finish(self) -> None:
        """Sort the keys and note the repeated ones (each once)."""
        if self.numeric:
            keys = self._ints[: self._n]
            keys.sort()  # in place
            same = keys[1:] == keys[:-1]
            self._sorted, self._repeated = keys, pa.array(np.unique(keys[1:][same]), type=pa.int64()).cast(self.type)
            return
        column = pa.chunked_array(self._chunks, type=self.type)
        self._chunks = []
        keys = column.take(pc.sort_indices(column)).combine_chunks()
        same = pc.equal(keys.slice(1), keys.slice(0, max(len(keys) - 1, 0)))
        self._sorted, self._repeated = keys, pc.unique(keys.slice(1).filter(same))

    def suspects(self) -> pa.Array:
        """Every row whose key is null or repeated: each repeated key as often as it occurs, then the nulls."""
        if not len(self._repeated):
            repeated = pa.array([], type=self.type)
        elif self.numeric:
            repeated = pa.array(self._sorted[np.isin(self._sorted, self._repeated.to_numpy())]).cast(self.type)
        else:
            repeated = self._sorted.filter(pc.is_in(self._sorted, value_set=self._repeated))
        return pa.concat_arrays([repeated, pa.nulls(self.nulls, type=self.type)])

    def rows_of(self, keys: list[Any]) -> int:
        """How many of the day's rows have one of ``keys`` (a repeated key counts each of its rows)."""
        if not keys:
            return 0
        wanted = pa.array(keys, type=self.type)
        if self.numeric:
            return int(np.isin(self._sorted, wanted.to_numpy()).sum())
        return int(pc.sum(pc.is_in(self._sorted, value_set=wanted)).as_py() or 0)

    def restate(self, result: Any, rows: int) -> None:
        """Make the key suite's counts, taken on the suspects, those of the day's ``rows`` rows."""
        for r in result.results:
            res = r.result or {}
            if "element_count" not in res:
                continue
            # the not-null rule counts nulls as unexpected (no missing_count); the unique rule sets them aside
            bad, missing = res.get("unexpected_count") or 0, self.nulls if "missing_count" in res else 0
            pct = {
                "element_count": rows,
                "missing_count": missing,
                "missing_percent": 100.0 * missing / rows if rows else None,
                "unexpected_percent": 100.0 * bad / (rows - missing) if rows - missing else None,
                "unexpected_percent_total": 100.0 * bad / rows if rows else None,
                "unexpected_percent_nonmissing": 100.0 * bad / (rows - missing) if rows - missing else None,
            }
            res.update({k: v for k, v in pct.items() if k in res})


def validate_parquet(
    spec: JobSpec, path: Path, batch_rows: int = 250_000, *, render: bool = True, whole_day: bool = True
) -> ValidationOutcome:
    pf = stream_parquet(path)
    return validate_batches(spec, pf.schema_arrow, pf.iter_batches(batch_size=batch_rows), render=render, whole_day=whole_day)


def validate_frame(spec: JobSpec, df: pd.DataFrame, batch_rows: int = 250_000) -> ValidationOutcome:
    """The same on a DataFrame (tests, notebooks)."""
    table = pa.Table.from_pandas(df, preserve_index=False)
    return validate_batches(spec, table.schema, table.to_batches(max_chunksize=batch_rows), render=False)
