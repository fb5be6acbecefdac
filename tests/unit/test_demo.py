"""The demo data: one table feeding the three demo jobs, deterministic, with outcomes a model can learn."""

from __future__ import annotations

import hashlib
import json
from datetime import date

import numpy as np
import pyarrow.compute as pc
import pytest

from pipeline.config import PROJECT_ROOT
from pipeline.demo import NEXT_PLANS, generate_day
from pipeline.jobs import load_job
from pipeline.quickstart import DEMO_JOBS

pytestmark = pytest.mark.unit

JOBS = PROJECT_ROOT / "dags" / "jobs"
CHURN_COLUMNS = [
    "ds", "customer_id", "tenure_months", "monthly_spend", "sessions_30d", "support_tickets_90d", "days_since_last_login",
    "avg_session_minutes", "discount_pct", "plan", "region", "payment_method", "churned",
]  # fmt: skip


def _digest(table) -> str:
    return hashlib.sha256(json.dumps({c: table.column(c).to_pylist() for c in table.column_names}, default=str).encode()).hexdigest()


def test_the_churn_columns_are_what_they_were_before_the_other_outcomes():
    """basket_value and next_plan draw from noise of their own: every churn value is what the generator made
    before they existed (the digest of 2026-03-15 at 1,000 customers as it was then), so existing demo
    databases, tests and results keep their churn data."""
    day = generate_day(date(2026, 3, 15), 1_000)
    assert day.column_names == [*CHURN_COLUMNS, "basket_value", "next_plan"]
    assert _digest(day.select(CHURN_COLUMNS)) == "8abe6d9623870231bdb52a10abe8457d288fe6fdd8dc6f4a11e9ed2c332c4229"


def test_a_day_is_the_same_whenever_it_is_made():
    a, b = generate_day(date(2026, 3, 15), 2_000), generate_day(date(2026, 3, 15), 2_000)
    assert a.equals(b)
    assert not a.column("basket_value").equals(generate_day(date(2026, 3, 16), 2_000).column("basket_value"))


def test_the_outcomes_fit_their_jobs():
    day = generate_day(date(2026, 3, 15), 20_000)
    spend = day.column("basket_value").to_numpy()
    assert day.column("basket_value").null_count == 0 and (spend > 0).all()
    assert np.mean(spend) > 1.2 * np.median(spend)  # right-skewed
    plans = day.column("next_plan").to_pylist()
    shares = {p: plans.count(p) / len(plans) for p in NEXT_PLANS}
    assert list(load_job(JOBS, "plan_choice").decision.classes) == list(NEXT_PLANS)
    assert 0.35 < shares["basic"] < 0.6 and 0.2 < shares["standard"] < 0.4 and 0.08 < shares["premium"] < 0.25
    # every churned customer cancels, and only they do
    churned = day.column("churned").to_numpy(zero_copy_only=False)
    assert ((np.array(plans) == "cancel") == churned).all()
    # most keep their plan; those who move up use the product more
    kept = pc.mean(pc.equal(day.column("plan"), day.column("next_plan"))).as_py()
    assert 0.5 < kept / (1 - churned.mean()) < 0.8
    sessions = day.column("sessions_30d").to_numpy()
    up = (day.column("plan").to_numpy(zero_copy_only=False) == "basic") & (np.array(plans) == "premium")
    assert sessions[up].mean() > 1.3 * sessions.mean()


def test_the_demo_jobs_read_the_demo_table_each_its_own_kind():
    specs = {name: load_job(JOBS, name) for name in DEMO_JOBS}
    assert {name: s.kind for name, s in specs.items()} == {"churn": "binary", "basket_value": "regression", "plan_choice": "multiclass"}
    columns = set(generate_day(date(2026, 3, 15), 10).column_names) | {"store_id"}  # basket_value's key: its query derives store_id
    for s in specs.values():
        assert set(s.columns) <= columns and s.training.label in columns
        assert s.evaluation is not None and "demo.customer_activity" in (JOBS / s.evaluation.sql).read_text()
    # one source of each kind: churn the predictions database, plan_choice the Parquet export; basket_value two key columns
    assert [specs[n].source.kind for n in DEMO_JOBS] == ["database", "database", "parquet"]
    assert specs["basket_value"].key_columns == ["store_id", "customer_id"] and "demo.customer_activity" in specs["churn"].source_sql(date(2026, 3, 15))
