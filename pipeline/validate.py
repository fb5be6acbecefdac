"""Validate: the job's feature contract, as a Great Expectations (GX Core 1.x) suite, run on one partition.

The suite is generated in code from the contract and run in an ephemeral GX context (nothing on disk).
The outcome is a per-rule summary: the rule in words, its column, the count and share of rows that
broke it, and a few example entity keys. Policy ``fail`` stops the run on any broken rule; policy
``quarantine`` sets rows that break row-level rules aside (with every reason) and lets the rest
through while their share stays under ``max_bad_ratio``. Table-level rules always fail the run.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from pipeline.errors import ValidationFailed
from pipeline.jobs import Feature, JobSpec

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
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
_STR = ["object", "str", "string", "string[python]", "string[pyarrow]", "large_string[pyarrow]", "StringDtype"]
_BOOL = ["bool", "boolean", "bool[pyarrow]"]
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
            "rows_quarantined": len(self.quarantined),
            "message": self.message,
            "failed_rules": self.summary(),
            "rules": [r.summary() for r in self.rules],
            "gx_result": self.gx_result,
        }


# --------------------------------------------------------------------------------------------
# The suite, from the contract
# --------------------------------------------------------------------------------------------
def _describe_feature_rules(f: Feature) -> list[tuple[str, dict[str, Any], str]]:
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


def _type_ok(series: pd.Series, f: Feature) -> bool:
    return str(series.dtype) in TYPE_LISTS[f.type] or (f.type == "category" and isinstance(series.dtype, pd.StringDtype))


def build_rules(spec: JobSpec, df: pd.DataFrame) -> list[tuple[str, dict[str, Any], str, bool]]:
    """(expectation class name, kwargs, words, row_level) for every rule of the contract.

    Value rules are added only for columns that exist with a usable type: a missing column or a
    wrong type is already reported by the table and type rules, and value rules would only error.
    """
    cols = set(df.columns)
    rules: list[tuple[str, dict[str, Any], str, bool]] = [
        (
            "ExpectTableColumnsToMatchSet",
            {"column_set": spec.columns, "exact_match": True},
            f"columns must be exactly {', '.join(spec.columns)}",
            False,
        ),
        (
            "ExpectTableRowCountToBeBetween",
            {"min_value": spec.validation.min_rows},
            f"must have at least {spec.validation.min_rows} row(s)",
            False,
        ),
    ]
    if spec.entity_key in cols:
        rules.append(("ExpectColumnValuesToNotBeNull", {"column": spec.entity_key}, "entity key must not be null", True))
        rules.append(("ExpectColumnValuesToBeUnique", {"column": spec.entity_key}, "entity key must be unique", True))
    for f in spec.features:
        if f.name not in cols:
            continue
        rules.append(
            ("ExpectColumnValuesToBeInTypeList", {"column": f.name, "type_list": TYPE_LISTS[f.type]}, f"must be of type {f.type}", False)
        )
        if not _type_ok(df[f.name], f):
            continue
        rules.extend((name, kw, words, True) for name, kw, words in _describe_feature_rules(f))
    return rules


# --------------------------------------------------------------------------------------------
# Running it
# --------------------------------------------------------------------------------------------
def _gx_context() -> Any:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    for name in ("great_expectations", "great_expectations.data_context.types.base"):
        logging.getLogger(name).setLevel(logging.WARNING)
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    return ctx


def _gx_compatible(df: pd.DataFrame) -> pd.DataFrame:
    """GX 1.x's type rule cannot match pandas 3's ``str`` dtype; give it plain object columns."""
    strings = [c for c in df.columns if isinstance(df[c].dtype, pd.StringDtype)]
    if not strings:
        return df
    return df.assign(**{c: df[c].astype(object) for c in strings})


def run_suite(spec: JobSpec, df: pd.DataFrame) -> tuple[list[RuleOutcome], dict[str, Any]]:
    """Run the generated suite on ``df``; return per-rule outcomes and GX's own result as JSON."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    df = _gx_compatible(df)
    ctx = _gx_context()
    batch_def = ctx.data_sources.add_pandas("nightscore").add_dataframe_asset(spec.name).add_batch_definition_whole_dataframe("partition")
    suite = ctx.suites.add(gx.ExpectationSuite(name=f"{spec.name}_contract"))
    rules = build_rules(spec, df)
    meta: dict[str, tuple[str, bool]] = {}
    for i, (cls_name, kwargs, words, row_level) in enumerate(rules):
        exp = getattr(gxe, cls_name)(**kwargs, meta={"nightscore_rule": i})
        suite.add_expectation(exp)
        meta[str(i)] = (words, row_level)

    key_cols = [spec.entity_key] if spec.entity_key in df.columns else []
    result_format: dict[str, Any] = {"result_format": "COMPLETE", "partial_unexpected_count": SAMPLE_KEYS}
    if key_cols:
        result_format["unexpected_index_column_names"] = key_cols
    batch = batch_def.get_batch(batch_parameters={"dataframe": df})
    result = batch.validate(suite, result_format=result_format)

    n = len(df)
    outcomes: list[RuleOutcome] = []
    for r in result.results:
        cfg = r.expectation_config
        words, row_level = meta[str(cfg.meta["nightscore_rule"])]
        res = r.result or {}
        column = cfg.kwargs.get("column")
        if r.exception_info and r.exception_info.get("raised_exception"):
            outcomes.append(
                RuleOutcome(
                    cfg.type, column, words + " (could not be evaluated)", False, False, observed=r.exception_info.get("exception_message")
                )
            )
            continue
        bad_keys: list[Any] = []
        if row_level and not r.success:
            for item in res.get("unexpected_index_list") or []:
                key: Any = item.get(spec.entity_key) if isinstance(item, dict) else item
                bad_keys.append(key.item() if hasattr(key, "item") else key)  # numpy scalar → Python
        count = int(res.get("unexpected_count") or 0) if row_level else 0
        outcomes.append(
            RuleOutcome(
                rule=cfg.type,
                column=column,
                description=words,
                success=bool(r.success),
                row_level=row_level,
                unexpected_count=count,
                unexpected_share=(count / n) if n else 0.0,
                sample_keys=bad_keys[:SAMPLE_KEYS],
                observed=_jsonable(res.get("observed_value")),
                bad_keys=bad_keys,
            )
        )
    return outcomes, _trim(result.to_json_dict())


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


def validate_frame(spec: JobSpec, df: pd.DataFrame) -> ValidationOutcome:
    """Apply the contract and the job's policy to one partition."""
    rules, gx_json = run_suite(spec, df)
    failed = [r for r in rules if not r.success]
    n = len(df)
    quarantined: dict[Any, list[str]] = {}
    if not failed:
        return ValidationOutcome(True, True, n, rules, {}, f"all {len(rules)} rules passed on {n} rows", gx_json)

    table_failures = [r for r in failed if not r.row_level]
    policy = spec.validation
    for r in failed:
        if r.row_level:
            for k in r.bad_keys:
                quarantined.setdefault(k, []).append(f"{r.column}: {r.description}")
    share = len(quarantined) / n if n else 1.0
    header = f"validation of job {spec.name!r} failed: {len(failed)} rule(s) broken on {n} rows"
    lines = [r.sentence() for r in failed]
    if policy.policy == "quarantine" and not table_failures and share <= policy.max_bad_ratio and len(quarantined) < n:
        msg = f"{len(quarantined)} of {n} rows ({share:.2%}) quarantined, within the limit of {policy.max_bad_ratio:.2%}: " + "; ".join(
            lines
        )
        return ValidationOutcome(False, True, n, rules, quarantined, msg, gx_json)
    if policy.policy == "quarantine" and not table_failures:
        header += f"; {len(quarantined)} bad rows ({share:.2%}) exceed max_bad_ratio {policy.max_bad_ratio:.2%}"
    return ValidationOutcome(
        False, False, n, rules, {} if policy.policy == "fail" else quarantined, header + ": " + "; ".join(lines), gx_json
    )


def raise_if_failed(outcome: ValidationOutcome, spec: JobSpec, where: str) -> None:
    if not outcome.passed:
        raise ValidationFailed(
            outcome.message,
            where=where,
            fix="correct the source data for this day, or the feature contract in the job spec if the data is right; "
            "nothing was published and the previous data is untouched",
            summary=outcome.summary(),
        )
