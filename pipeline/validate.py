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
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.errors import ValidationFailed
from pipeline.jobs import Feature, JobSpec
from pipeline.storage import stream_parquet

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
# GX logs one INFO line per public function as it imports ("Skipping registering function ..."): about 200
# lines that buried every Airflow task log. Its warnings and errors still show.
logging.getLogger("great_expectations._docs_decorators").setLevel(logging.WARNING)
# and one INFO line per metric it declares twice ("Multiple declarations of metric ..."), in every task log
logging.getLogger("great_expectations.expectations.registry").setLevel(logging.WARNING)
log = logging.getLogger(__name__)

SAMPLE_KEYS = 5

_FLOAT = ["float16", "float32", "float64", "Float32", "Float64", "double[pyarrow]", "float[pyarrow]"]
_INT = [
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "Int8",
    "Int16",
    "Int32",
    "Int64",
    "int64[pyarrow]",
    "int32[pyarrow]",
]
_STR = ["object", "str"]  # the schema suite sees strings as object columns, and GX checks each value (str)
_BOOL = ["bool", "boolean", "BooleanDtype"]
# ints with nulls arrive as float64 from Arrow, so int features accept floats; strings never pass as numbers
TYPE_LISTS: dict[str, list[str]] = {"float": _FLOAT + _INT, "int": _INT + _FLOAT, "category": _STR, "bool": _BOOL}


@dataclass
class RuleOutcome:
    rule: str  # GX expectation type
    column: str | None
    description: str  # the rule in words
    success: bool
    row_level: bool  # a row-level rule can quarantine rows; a table-level one fails the run
    unexpected_count: int = 0
    unexpected_share: float = 0.0
    sample_keys: list[Any] = field(default_factory=list)
    observed: Any = None
    bad_keys: list[Any] = field(default_factory=list, repr=False)

    def sentence(self) -> str:
        where = f"column '{self.column}'" if self.column else "table"
        if self.row_level:
            keys = ", ".join(str(k) for k in self.sample_keys)
            return f"{where}: {self.description}: {self.unexpected_count} row(s) ({self.unexpected_share:.2%}) broke it" + (
                f", e.g. keys {keys}" if keys else ""
            )
        return f"{where}: {self.description} (observed: {self.observed})"

    def summary(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("bad_keys")
        d["message"] = self.sentence()
        return d


@dataclass
class ValidationOutcome:
    success: bool  # every rule held
    passed: bool  # the run may go on (success, or quarantine within its limit)
    rows: int
    rules: list[RuleOutcome]
    quarantined: dict[Any, list[str]]  # entity key -> reasons
    message: str
    gx_result: dict[str, Any]
    rows_quarantined: int = 0  # rows (a duplicated key quarantines each of its rows)
    html: str = ""  # the GX result rendered as Data Docs

    @property
    def failed_rules(self) -> list[RuleOutcome]:
        return [r for r in self.rules if not r.success]

    def summary(self) -> list[dict[str, Any]]:
        return [r.summary() for r in self.failed_rules]

    def report(self) -> dict[str, Any]:
        return {
            "success": self.success,
            "passed": self.passed,
            "rows": self.rows,
            "rows_quarantined": self.rows_quarantined,
            "keys_quarantined": len(self.quarantined),
            "message": self.message,
            "failed_rules": self.summary(),
            "rules": [r.summary() for r in self.rules],
            "gx_result": self.gx_result,
        }


# --------------------------------------------------------------------------------------------
# The suites, from the contract
# --------------------------------------------------------------------------------------------
Rule = tuple[str, dict[str, Any], str, bool]  # (GX expectation class, kwargs, the rule in words, row level)


def _feature_rules(f: Feature) -> list[tuple[str, dict[str, Any], str]]:
    rules: list[tuple[str, dict[str, Any], str]] = []
    if not f.nullable:
        rules.append(("ExpectColumnValuesToNotBeNull", {"column": f.name}, "must not be null"))
    if f.type in ("float", "int") and (f.min is not None or f.max is not None):
        lo = "-inf" if f.min is None else f"{f.min:g}"
        hi = "+inf" if f.max is None else f"{f.max:g}"
        rules.append(
            ("ExpectColumnValuesToBeBetween", {"column": f.name, "min_value": f.min, "max_value": f.max}, f"must be between {lo} and {hi}")
        )
    if f.type == "category":
        rules.append(
            (
                "ExpectColumnValuesToBeInSet",
                {"column": f.name, "value_set": list(f.values or [])},
                f"must be one of {', '.join(f.values or [])}",
            )
        )
    return rules


def _type_ok(dtype: Any, f: Feature) -> bool:
    """Whether a column of this dtype (in the schema frame) passes the type rule of ``f``."""
    return str(dtype) in TYPE_LISTS[f.type]


def schema_diff(spec: JobSpec, columns: Iterable[str]) -> str:
    """Missing, unexpected and re-cased columns against the contract, in words ('' when they match)."""
    got, want = list(columns), spec.columns
    missing = [c for c in want if c not in got]
    extra = [c for c in got if c not in want]
    parts = []
    for c in list(missing):
        twin = next((g for g in extra if g.lower() == c.lower()), None)
        if twin is not None:
            parts.append(f"'{c}' arrives as '{twin}' (letter case differs)")
            missing.remove(c)
            extra.remove(twin)
    if missing:
        parts.append("missing " + ", ".join(f"'{c}'" for c in missing))
    if extra:
        parts.append("unexpected " + ", ".join(f"'{c}'" for c in extra) + (" (renamed?)" if missing else ""))
    return "; ".join(parts)


def build_schema_rules(spec: JobSpec, dtypes: dict[str, Any]) -> list[Rule]:
    """The schema suite: exact column set, and the type of each contract column that is present."""
    rules: list[Rule] = [
        (
            "ExpectTableColumnsToMatchSet",
            {"column_set": spec.columns, "exact_match": True},
            f"columns must be exactly {', '.join(spec.columns)}",
            False,
        )
    ]
    for f in spec.features:
        if f.name in dtypes:
            rules.append(
                (
                    "ExpectColumnValuesToBeInTypeList",
                    {"column": f.name, "type_list": TYPE_LISTS[f.type]},
                    f"must be of type {f.type}",
                    False,
                )
            )
    return rules


def build_rules(spec: JobSpec, dtypes: dict[str, Any]) -> list[Rule]:
    """The batch suite: row-level rules for the contract columns that are present with a usable type.

    A missing column or a wrong type is already reported by the schema suite; value rules on it would only error.
    """
    rules: list[Rule] = []
    for f in spec.features:
        if f.name in dtypes and _type_ok(dtypes[f.name], f):
            rules.extend((name, kw, words, True) for name, kw, words in _feature_rules(f))
    return rules


def build_day_rules(spec: JobSpec, whole_day: bool = True) -> list[Rule]:
    """The day suite: the row count, a rule of the whole day (for one shard of several, :func:`check_day`
    applies it to the shards' sum instead)."""
    if not whole_day:
        return []
    return [
        (
            "ExpectTableRowCountToBeBetween",
            {"min_value": spec.validation.min_rows},
            f"must have at least {spec.validation.min_rows} row(s)",
            False,
        )
    ]


def build_key_rules(spec: JobSpec, has_key: bool) -> list[Rule]:
    """The key suite, on the day's entity keys (a shard's keys: one key is always in the same shard, so
    uniqueness holds per shard)."""
    rules: list[Rule] = []
    if has_key:
        # a row without a key can be neither published nor quarantined: always fail
        rules.append(("ExpectColumnValuesToNotBeNull", {"column": spec.entity_key}, "entity key must not be null", False))
        rules.append(("ExpectColumnValuesToBeUnique", {"column": spec.entity_key}, "entity key must be unique", True))
    return rules


# --------------------------------------------------------------------------------------------
# Running them
# --------------------------------------------------------------------------------------------
def _gx_context() -> Any:
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


class _Suites:
    """The two suites in one ephemeral GX context, with each rule's words and level by index."""

    SCHEMA, BATCH, DAY, KEYS = 0, 1, 2, 3

    def __init__(self, spec: JobSpec, schema_rules: list[Rule], rules: list[Rule], day_rules: list[Rule], key_rules: list[Rule]) -> None:
        import great_expectations as gx
        import great_expectations.expectations as gxe

        self.ctx = _gx_context()
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


_SUMMED = ("element_count", "missing_count", "unexpected_count")
_LISTS = ("partial_unexpected_list", "partial_unexpected_index_list", "unexpected_list", "unexpected_index_list")


def merge_results(schema_result: Any, batch_results: list[Any], *day_results: Any) -> Any:
    """One GX suite validation result for the day: the schema suite's, the batch suite's summed over the
    batches, and the day's (the day suite's, the key suite's)."""
    merged = batch_results[0]
    by_rule = {r.expectation_config.meta["nightscore_rule"]: r for r in merged.results}
    for other in batch_results[1:]:
        for r in other.results:
            m = by_rule[r.expectation_config.meta["nightscore_rule"]]
            m.success = bool(m.success and r.success)
            if r.exception_info and r.exception_info.get("raised_exception") and not (m.exception_info or {}).get("raised_exception"):
                m.exception_info = r.exception_info
            a, b = m.result or {}, r.result or {}
            for k in _SUMMED:
                if k in a or k in b:
                    a[k] = (a.get(k) or 0) + (b.get(k) or 0)
            for k in _LISTS:
                if k in a or k in b:
                    a[k] = list(a.get(k) or []) + list(b.get(k) or [])
            m.result = a
    for m in merged.results:
        res = m.result or {}
        if "element_count" in res:
            n, missing, bad = res.get("element_count") or 0, res.get("missing_count") or 0, res.get("unexpected_count") or 0
            res["missing_percent"] = 100.0 * missing / n if n else None
            res["unexpected_percent"] = 100.0 * bad / n if n else None
            res["unexpected_percent_total"] = res["unexpected_percent"]
            res["unexpected_percent_nonmissing"] = 100.0 * bad / (n - missing) if n - missing else None
            if "partial_unexpected_list" in res:
                res["partial_unexpected_list"] = res["partial_unexpected_list"][: SAMPLE_KEYS * 4]
                res["partial_unexpected_counts"] = [
                    {"value": v, "count": c}
                    for v, c in Counter(map(_hashable, res.get("unexpected_list") or [])).most_common(SAMPLE_KEYS * 4)
                ]
            if "partial_unexpected_index_list" in res:
                res["partial_unexpected_index_list"] = res["partial_unexpected_index_list"][: SAMPLE_KEYS * 4]
    merged.results[:0] = schema_result.results
    for day_result in day_results:
        merged.results.extend(day_result.results)
    ok = sum(bool(r.success) for r in merged.results)
    merged.success = ok == len(merged.results)
    merged.statistics.update(
        evaluated_expectations=len(merged.results),
        successful_expectations=ok,
        unsuccessful_expectations=len(merged.results) - ok,
        success_percent=100.0 * ok / len(merged.results) if merged.results else None,
    )
    return merged


def _hashable(v: Any) -> Any:
    return v if isinstance(v, str | int | float | bool | type(None)) else str(v)


def _outcomes(spec: JobSpec, suites: _Suites, merged: Any, rows: int, schema: pa.Schema) -> list[RuleOutcome]:
    out: list[RuleOutcome] = []
    for r in merged.results:
        cfg = r.expectation_config
        words, row_level = suites.meta[cfg.meta["nightscore_rule"]]
        res = r.result or {}
        column = cfg.kwargs.get("column")
        if r.exception_info and r.exception_info.get("raised_exception"):
            out.append(
                RuleOutcome(
                    cfg.type, column, words + " (could not be evaluated)", False, False, observed=r.exception_info.get("exception_message")
                )
            )
            continue
        observed = _jsonable(res.get("observed_value"))
        if cfg.type == "expect_table_columns_to_match_set" and not r.success:
            observed = schema_diff(spec, schema.names)
        elif cfg.type == "expect_column_values_to_be_in_type_list" and not r.success:
            observed = f"{schema.field(column).type} from the source"
        bad_keys: list[Any] = []
        if row_level and not r.success:
            for item in res.get("unexpected_index_list") or []:
                key: Any = item.get(spec.entity_key) if isinstance(item, dict) else item
                bad_keys.append(key.item() if hasattr(key, "item") else key)  # numpy scalar → Python
        count = int(res.get("unexpected_count") or 0) if row_level else 0
        out.append(
            RuleOutcome(
                rule=cfg.type,
                column=column,
                description=words,
                success=bool(r.success),
                row_level=row_level,
                unexpected_count=count,
                unexpected_share=(count / rows) if rows else 0.0,
                sample_keys=bad_keys[:SAMPLE_KEYS],
                observed=observed,
                bad_keys=bad_keys,
            )
        )
    return out


def _jsonable(v: Any) -> Any:
    try:
        json.dumps(v)
        return v
    except TypeError:
        return str(v)


def _trim(d: Any, limit: int = 20) -> Any:
    """GX's COMPLETE result lists every bad value; keep the report small."""
    if isinstance(d, dict):
        return {k: _trim(v, limit) for k, v in d.items()}
    if isinstance(d, list):
        return [_trim(v, limit) for v in d[:limit]]
    return d


def render_data_docs(result: Any) -> str:
    """GX's own Data Docs page for a validation result, as one HTML document."""
    from great_expectations.render.renderer import ValidationResultsPageRenderer
    from great_expectations.render.view import DefaultJinjaPageView

    return str(DefaultJinjaPageView().render(ValidationResultsPageRenderer().render(result)))


def validate_batches(
    spec: JobSpec, schema: pa.Schema, batches: Iterable[pa.RecordBatch], *, render: bool = True, whole_day: bool = True
) -> ValidationOutcome:
    """Apply the contract and the job's policy to a partition given as Arrow record batches.

    With ``whole_day=False`` (one shard of several) the day's rules (the row count, the share of bad rows)
    are left to :func:`check_day`, over every shard; a shard with bad rows under ``quarantine`` sets them
    aside whatever their share."""
    key = spec.entity_key if spec.entity_key in schema.names else None
    keys = KeyCheck(schema.field(key).type) if key else None
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
        spec, build_schema_rules(spec, dtypes), build_rules(spec, dtypes), build_day_rules(spec, whole_day), build_key_rules(spec, key is not None)
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


def bad_rows_by_key(rules: list[RuleOutcome]) -> dict[Any, list[str]]:
    """Entity key -> every row-level rule its row(s) broke, in words."""
    quarantined: dict[Any, list[str]] = {}
    for r in rules:
        if r.row_level and not r.success:
            for k in r.bad_keys:
                reasons = quarantined.setdefault(k, [])
                reason = f"{r.column}: {r.description}"
                if reason not in reasons:
                    reasons.append(reason)
    return quarantined


def apply_policy(
    spec: JobSpec,
    rules: list[RuleOutcome],
    n: int,
    gx_json: dict[str, Any],
    quarantined: dict[Any, list[str]],
    bad_rows: int,
    *,
    whole_day: bool = True,
) -> ValidationOutcome:
    """Decide the run's fate: pass, pass with the bad rows quarantined, or fail. For one shard of several
    (``whole_day=False``) the share of bad rows is judged over the whole day, by :func:`check_day`."""
    failed = [r for r in rules if not r.success]
    if not failed:
        return ValidationOutcome(True, True, n, rules, {}, f"all {len(rules)} rules passed on {n} rows", gx_json)
    table_failures = [r for r in failed if not r.row_level]
    policy = spec.validation
    share = bad_rows / n if n else 1.0
    header = f"validation of job {spec.name!r} failed: {len(failed)} rule(s) broken on {n} rows"
    lines = [r.sentence() for r in failed]
    within = (share <= policy.max_bad_ratio and bad_rows < n) or not whole_day
    if policy.policy == "quarantine" and not table_failures and within:
        msg = f"{bad_rows} of {n} rows ({share:.2%}) quarantined, within the limit of {policy.max_bad_ratio:.2%}: " + "; ".join(lines)
        return ValidationOutcome(False, True, n, rules, quarantined, msg, gx_json, rows_quarantined=bad_rows)
    if policy.policy == "quarantine" and not table_failures:
        header += f"; {bad_rows} bad rows ({share:.2%}) exceed max_bad_ratio {policy.max_bad_ratio:.2%}"
    return ValidationOutcome(False, False, n, rules, {}, header + ": " + "; ".join(lines), gx_json)


def check_day(spec: JobSpec, ds: Any, rows: int, quarantined: int, shards: int, where: str) -> None:
    """The day's own rules over all its shards: at least ``min_rows`` rows, and (policy ``quarantine``) a
    share of bad rows within ``max_bad_ratio`` with some rows left to publish. One shard's validation
    already applied them; with several, each shard only knows its own part of the day."""
    policy = spec.validation
    untouched = "nothing was published and the previous data is untouched"
    over = f" over its {shards} shards" if shards > 1 else ""
    if rows < policy.min_rows:
        raise ValidationFailed(
            f"validation of job {spec.name!r} failed: the source returned {rows} row(s) for {ds}{over}, fewer than min_rows {policy.min_rows}",
            where=where,
            fix=f"check that the day's data has arrived in the source ({spec.source.sql}), or lower validation.min_rows in "
            f"{spec.spec_path.name}; {untouched}",
        )
    if not quarantined:
        return
    share = quarantined / rows
    if share > policy.max_bad_ratio or quarantined >= rows:
        raise ValidationFailed(
            f"validation of job {spec.name!r} failed: {quarantined} bad rows of {rows} ({share:.2%}){over} exceed max_bad_ratio "
            f"{policy.max_bad_ratio:.2%}",
            where=where,
            fix=f"correct the source rows listed in quarantined_rows and the shards' validation reports, or raise "
            f"validation.max_bad_ratio in {spec.spec_path.name}; {untouched}",
        )


def raise_if_failed(outcome: ValidationOutcome, spec: JobSpec, where: str) -> None:
    if outcome.passed:
        return
    untouched = "nothing was published and the previous data is untouched"
    if any(not r.row_level for r in outcome.failed_rules):
        fix = (
            f"the partition's shape differs from the feature contract: correct the source query ({spec.source.sql}) or the source table, "
            f"or change the contract in {spec.spec_path.name} if the new shape is intended (then retrain); {untouched}"
        )
    else:
        fix = (
            "correct the source rows named above; or set validation.policy: quarantine (with max_bad_ratio) in "
            f"{spec.spec_path.name} to score the good rows and set the bad ones aside; {untouched}"
        )
    raise ValidationFailed(outcome.message, where=where, fix=fix, summary=outcome.summary())
