"""The policy: what the broken rules mean for the run.

Policy ``fail`` stops the run on any broken rule; policy ``quarantine`` sets rows that break row-level rules
aside (with every reason) and lets the rest through while their share stays under ``max_bad_ratio``.
Table-level rules (schema drift, types, an empty partition, null keys) always fail the run. For one shard of
several, :func:`check_day` applies the day's rules to the shards' sums.
"""

from __future__ import annotations

from typing import Any

from pipeline.errors import ValidationFailed
from pipeline.jobs import JobSpec
from pipeline.validate.results import RuleOutcome, ValidationOutcome


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
            fix=f"check that the day's data has arrived in the source ({spec.source.sql or spec.source.parquet}), or lower validation.min_rows in "
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
            f"the partition's shape differs from the feature contract: correct the source ({spec.source.sql or spec.source.parquet}: its query, table or files), "
            f"or change the contract in {spec.spec_path.name} if the new shape is intended (then retrain); {untouched}"
        )
    else:
        fix = (
            "correct the source rows named above; or set validation.policy: quarantine (with max_bad_ratio) in "
            f"{spec.spec_path.name} to score the good rows and set the bad ones aside; {untouched}"
        )
    raise ValidationFailed(outcome.message, where=where, fix=fix, summary=outcome.summary())
