"""The rules: the job's feature contract as GX expectations, four suites of them, and the schema drift in words.

A rule is ``(GX expectation class, kwargs, the rule in words, row level)``; a row-level rule can quarantine
the rows that break it, a table-level one fails the run. Nothing here imports GX: the suites are built in
:mod:`pipeline.validate.runner`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pipeline.jobs import Feature, JobSpec

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
        from pipeline.keys import key_column

        column = key_column(spec.key_columns)  # a key of several columns: its text key
        rules.append(("ExpectColumnValuesToNotBeNull", {"column": column}, "entity key must not be null", False))
        rules.append(("ExpectColumnValuesToBeUnique", {"column": column}, "entity key must be unique", True))
    return rules
