"""The generated GX suite on small hand-made frames (real GX Core, no database)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.config import PROJECT_ROOT
from pipeline.demo import generate_day
from pipeline.errors import ValidationFailed
from pipeline.jobs import load_job
from pipeline.validate import raise_if_failed, validate_frame

pytestmark = pytest.mark.unit

SPEC = load_job(PROJECT_ROOT / "dags" / "jobs", "churn")


@pytest.fixture(scope="module")
def good() -> pd.DataFrame:
    from datetime import date

    return generate_day(date(2026, 3, 1), 500).drop(["ds", "churned", "basket_value", "next_plan"]).to_pandas()  # features only


def test_clean_partition_passes(good):
    out = validate_frame(SPEC, good)
    assert out.success and out.passed and out.rows == 500
    assert not out.failed_rules
    rules = {(r.rule, r.column) for r in out.rules}
    assert ("expect_column_values_to_be_in_set", "plan") in rules
    assert ("expect_column_values_to_be_between", "monthly_spend") in rules
    assert ("expect_column_values_to_be_unique", "customer_id") in rules
    assert ("expect_column_values_to_not_be_null", "days_since_last_login") not in rules  # nullable in the contract


def test_out_of_range_value_is_named_with_count_and_keys(good):
    bad = good.copy()
    bad.loc[[3, 7], "monthly_spend"] = 123_456.0
    out = validate_frame(SPEC, bad)
    assert not out.passed
    [rule] = out.failed_rules
    assert rule.column == "monthly_spend" and rule.unexpected_count == 2
    assert sorted(rule.sample_keys) == [int(bad.customer_id[3]), int(bad.customer_id[7])]
    with pytest.raises(ValidationFailed) as info:
        raise_if_failed(out, SPEC, where="test")
    msg = str(info.value)
    assert "column 'monthly_spend': must be between 0 and 10000: 2 row(s) (0.40%) broke it" in msg
    assert "nothing was published" in msg
    assert info.value.summary[0]["column"] == "monthly_spend"


def test_wrong_type_and_missing_column_fail_as_table_rules(good):
    bad = good.drop(columns=["region"]).assign(sessions_30d=good.sessions_30d.astype(str))
    out = validate_frame(SPEC, bad)
    failed = {(r.rule, r.column) for r in out.failed_rules}
    assert ("expect_table_columns_to_match_set", None) in failed
    assert ("expect_column_values_to_be_in_type_list", "sessions_30d") in failed
    assert not out.passed and not any(r.row_level for r in out.failed_rules)


def test_unknown_category_null_and_duplicate_key(good):
    bad = good.copy()
    bad.loc[0, "plan"] = "platinum"
    bad.loc[1, "monthly_spend"] = np.nan
    bad.loc[2, "customer_id"] = bad.loc[3, "customer_id"]
    out = validate_frame(SPEC, bad)
    by_col = {(r.column, r.rule): r for r in out.failed_rules}
    assert by_col[("plan", "expect_column_values_to_be_in_set")].sample_keys == [int(good.customer_id[0])]
    assert by_col[("monthly_spend", "expect_column_values_to_not_be_null")].unexpected_count == 1
    assert by_col[("customer_id", "expect_column_values_to_be_unique")].unexpected_count == 2


def test_empty_partition_fails(good):
    out = validate_frame(SPEC, good.iloc[0:0])
    assert not out.passed
    assert any(r.rule == "expect_table_row_count_to_be_between" for r in out.failed_rules)


def test_batches_add_up_to_the_whole_day(good):
    """Streaming: the same partition in 7 batches gives the same rules, counts and keys as in one."""
    bad = good.copy()
    bad.loc[[10, 200, 450], "discount_pct"] = 101.0
    bad.loc[499, "customer_id"] = bad.loc[0, "customer_id"]  # a duplicate across batches
    whole, parts = validate_frame(SPEC, bad), validate_frame(SPEC, bad, batch_rows=70)
    assert [(r.rule, r.column, r.unexpected_count, sorted(r.bad_keys)) for r in whole.rules] == [
        (r.rule, r.column, r.unexpected_count, sorted(r.bad_keys)) for r in parts.rules
    ]
    by_col = {(r.column, r.rule): r for r in parts.failed_rules}
    assert by_col[("discount_pct", "expect_column_values_to_be_between")].unexpected_count == 3
    assert by_col[("customer_id", "expect_column_values_to_be_unique")].unexpected_count == 2
    assert parts.gx_result["statistics"]["evaluated_expectations"] == len(parts.rules)


@pytest.mark.parametrize("key_type", ["int64", "int32", "string"])
def test_key_suite_on_the_suspects_gives_the_counts_of_the_suite_on_every_key(good, key_type):
    """KeyCheck hands GX only the rows with a null or repeated key; restated, the key suite's result is the
    one GX gives on every key of the day (a key three times, two twice, two nulls, spread over batches)."""
    import pyarrow as pa

    from pipeline.validate import KeyCheck, _suites

    rng = np.random.default_rng(7)
    values: list = [int(v) for v in rng.permutation(10_000)[:5_000]]
    values[100] = values[4_000] = values[2]  # three times
    values[7], values[4_999] = values[8], values[9]
    values[50] = values[3_333] = None
    arrow_type = {"int64": pa.int64(), "int32": pa.int32(), "string": pa.string()}[key_type]
    column = pa.array([None if v is None else (str(v) if key_type == "string" else v) for v in values], arrow_type)
    table = pa.table({"customer_id": column})
    suites = _suites(SPEC, table.schema, table.slice(0, 10), "customer_id")
    every = suites.run(suites.KEYS, pd.DataFrame({"customer_id": column.to_pandas()}), "customer_id")
    check = KeyCheck(arrow_type)
    for batch in table.to_batches(max_chunksize=700):
        check.add(batch.column(0))
    check.finish()
    suspects = check.suspects()
    assert len(suspects) == 3 + 2 + 2 + 2
    some = suites.run(suites.KEYS, pd.DataFrame({"customer_id": suspects.to_pandas()}), "customer_id")
    check.restate(some, len(values))

    def summary(result):
        out = []
        for r in result.results:
            res = r.result
            keys = sorted(str(i["customer_id"]) for i in res.get("unexpected_index_list") or [])
            out.append((r.expectation_config.type, r.success, res["element_count"], res.get("missing_count"), res["unexpected_count"], keys))
            out.append({k: round(v, 9) for k, v in res.items() if k.endswith("_percent") or "_percent_" in k})
        return out

    assert summary(some) == summary(every)
    assert summary(every)[0][4] == 2 and summary(every)[2][4] == 7  # nulls; rows of repeated keys
    repeated = [str(v) for v in (values[2], values[8], values[9])]
    assert check.rows_of([int(k) if key_type != "string" else k for k in repeated]) == 7


def test_schema_diff_names_case_renames_and_extras():
    from pipeline.validate import schema_diff

    cols = [c for c in SPEC.columns if c not in ("plan", "region")] + ["Plan", "region_code", "extra"]
    diff = schema_diff(SPEC, cols)
    assert "'plan' arrives as 'Plan' (letter case differs)" in diff
    assert "missing 'region'" in diff and "unexpected 'region_code', 'extra' (renamed?)" in diff
    assert schema_diff(SPEC, SPEC.columns) == ""


def test_data_docs_render_the_merged_result(good):
    import pyarrow as pa

    from pipeline.validate import validate_batches

    table = pa.Table.from_pandas(good, preserve_index=False)
    out = validate_batches(SPEC, table.schema, table.to_batches(max_chunksize=200))
    assert "<html" in out.html.lower() and "monthly_spend" in out.html and "customer_id" in out.html


def test_importing_gx_through_the_pipeline_logs_no_registration_noise():
    """GX's ~200 "Skipping registering function" INFO lines at import are kept out of task logs."""
    import subprocess
    import sys

    code = (
        "import logging, sys; logging.basicConfig(level=logging.INFO, stream=sys.stdout); "
        "import pipeline.validate as v; v._gx_context(); print('done')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert "done" in out.stdout
    assert "Skipping registering" not in out.stdout + out.stderr
