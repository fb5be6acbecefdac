"""The results: the outcome types, the day's GX results merged into one, and that result as Data Docs.

:class:`RuleOutcome` is one rule's summary (its words, column, the count and share of rows that broke it, a
few example keys); :class:`ValidationOutcome` is the partition's (the rules, the quarantine, the message, the
merged GX result as JSON and as Data Docs HTML). :func:`merge_results` makes the per-batch GX results one
suite result, which :func:`_outcomes` reads into rule outcomes.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from pipeline.jobs import JobSpec
from pipeline.keys import KEY_COLUMN, describe_key, key_column
from pipeline.validate.rules import schema_diff

if TYPE_CHECKING:
    from pipeline.validate.runner import _Suites

SAMPLE_KEYS = 5


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
                key: Any = item.get(key_column(spec.key_columns)) if isinstance(item, dict) else item
                bad_keys.append(key.item() if hasattr(key, "item") else key)  # numpy scalar → Python
        count = int(res.get("unexpected_count") or 0) if row_level else 0
        samples = bad_keys[:SAMPLE_KEYS]
        if len(spec.key_columns) > 1:  # a key of several columns: shown by its columns (store_id=3, sku=A-1)
            samples = [f"({describe_key(str(k), spec.key_columns)})" for k in samples]
            column = ", ".join(spec.key_columns) if column == KEY_COLUMN else column
        out.append(
            RuleOutcome(
                rule=cfg.type,
                column=column,
                description=words,
                success=bool(r.success),
                row_level=row_level,
                unexpected_count=count,
                unexpected_share=(count / rows) if rows else 0.0,
                sample_keys=samples,
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
