"""The three demo jobs end to end: ``quickstart`` sets up and scores each one (binary, regression, multiclass)
and suggests queries that run; ``demo-data`` brings a demo table made before the later outcomes up to date."""

from __future__ import annotations

import re
from datetime import date

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from pipeline import db
from pipeline.cli import app
from tests.integration.test_cli import _env

pytestmark = pytest.mark.integration
runner = CliRunner()


def test_quickstart_scores_every_demo_job_and_its_queries_run(empty_settings):
    res = runner.invoke(app, ["quickstart", "--customers", "300"], env=_env(empty_settings, COLUMNS="400"))
    assert res.exit_code == 0, res.output
    text = res.output
    for job, kind, model in (
        ("churn", "binary", "churn_xgb"),
        ("basket_value", "regression", "basket_value_xgb"),
        ("plan_choice", "multiclass", "plan_choice_xgb"),
    ):
        assert f"{job} ({kind})" in text and f"trained {model} v1" in text, text
        assert re.search(rf"run \S+ {job} \S+: extracted 300, .* published 300 with {model} v1", text), text
    assert "pinball" in text and "accuracy" in text and "AUC" in text  # each model's own holdout metrics
    assert re.search(r"done in \d+ s \(demo data \d+ s, churn \d+ s, basket_value \d+ s, plan_choice \d+ s\)", text), text
    queries = [
        line.split("try", 1)[-1].strip() for line in text.splitlines() if line.strip().startswith("SELECT") or line.startswith("try")
    ]
    assert len(queries) == 5, queries  # churn 1, basket_value 2 (bands, intervals), plan_choice 2 (classes, premium)
    with db.engine(empty_settings).connect() as conn:
        results = [conn.exec_driver_sql(q.rstrip(";")).mappings().all() for q in queries]
    churn, bands, intervals, classes, premium = results
    assert sum(r["count"] for r in churn) == 300 and {r["label"] for r in churn} <= {"churn", "stay"}
    assert sum(r["count"] for r in bands) == 300 and {r["band"] for r in bands} <= {"low", "medium", "high"}
    assert len(intervals) == 5 and all(r["low"] <= r["median"] <= r["high"] for r in intervals)
    assert sum(r["count"] for r in classes) == 300 and {r["label"] for r in classes} <= {"basic", "standard", "premium", "cancel"}
    assert len(premium) == 5 and [r["probability"] for r in premium] == sorted((r["probability"] for r in premium), reverse=True)
    # again: the models are reused, the days kept
    res = runner.invoke(app, ["quickstart", "--customers", "300", "--job", "plan_choice"], env=_env(empty_settings))
    assert res.exit_code == 0 and "reusing plan_choice_xgb@champion" in res.output and "0 day(s) generated" in res.output, res.output
    assert "churn (binary)" not in res.output and "basket_value (regression)" not in res.output


def test_demo_data_rewrites_days_made_before_the_later_outcomes(empty_settings):
    """A demo table made before basket_value and next_plan: the columns are added and its days written again,
    their churn values unchanged."""
    from pipeline.demo import generate_day

    days = [date(2026, 3, 14), date(2026, 3, 15)]
    eng = db.ready_engine(empty_settings)
    old_columns = generate_day(days[0], 1).drop(["basket_value", "next_plan"]).column_names
    # the table as it was made then: the churn columns only
    types = {"ds": "date", "customer_id": "bigint", "plan": "text", "region": "text", "payment_method": "text", "churned": "boolean"}
    types |= {c: "bigint" for c in ("tenure_months", "sessions_30d", "support_tickets_90d")}
    columns = ", ".join(f"{c} {types.get(c, 'double precision')}" for c in old_columns)
    with eng.begin() as conn:
        conn.execute(sa.text("CREATE SCHEMA demo"))
        conn.execute(sa.text(f"CREATE TABLE demo.customer_activity ({columns}, PRIMARY KEY (ds, customer_id))"))
    with db.adbc_connect(empty_settings) as conn:
        with conn.cursor() as cur:
            for d in days:
                cur.adbc_ingest(
                    "customer_activity", generate_day(d, 200).drop(["basket_value", "next_plan"]), mode="append", db_schema_name="demo"
                )
        conn.commit()
    read = "SELECT ds, customer_id, churned, monthly_spend, payment_method FROM demo.customer_activity ORDER BY ds, customer_id"
    with eng.connect() as conn:
        before = conn.execute(sa.text(read)).all()
    res = runner.invoke(app, ["demo-data", "--start", "2026-03-13", "--end", "2026-03-15", "--customers", "200"], env=_env(empty_settings))
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "3 written, 0 already there" in text and "replaced" not in text, text
    assert "2 day(s) were written before the basket_value and next_plan columns existed and were written again with them" in text, text
    with eng.connect() as conn:
        after = conn.execute(sa.text(read + " OFFSET 200")).all()  # the day before them is new
        filled = conn.execute(
            sa.text("SELECT count(*) FROM demo.customer_activity WHERE basket_value IS NOT NULL AND next_plan IS NOT NULL")
        ).scalar()
    assert after == before and filled == 600
    res = runner.invoke(app, ["demo-data", "--start", "2026-03-13", "--end", "2026-03-15", "--customers", "200"], env=_env(empty_settings))
    assert res.exit_code == 0 and "0 written, 3 already there" in res.output and "written again" not in res.output, res.output
