"""Features from where they live, through the command a user types: Parquet in S3 (moto, SeaweedFS) and in a
folder, a second PostgreSQL database reached through a connection, and a key of two columns with its typed
view. Each source publishes exactly what the same rows publish from the predictions database."""

from __future__ import annotations

import shutil
from datetime import timedelta

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml
from typer.testing import CliRunner

from pipeline import db
from pipeline.cli import app
from pipeline.config import PROJECT_ROOT
from tests.conftest import CUSTOMERS, DAY
from tests.integration.test_cli import _env
from tests.integration.test_kinds_jobs import _published

pytestmark = pytest.mark.integration
runner = CliRunner()
JOBS = PROJECT_ROOT / "dags" / "jobs"
SECRET = "Wh-s3cret-pw"


def _jobs(tmp_path, **extra: dict) -> object:
    """The demo jobs folder, plus a job per ``extra`` entry: a copy of another job's spec with fields replaced."""
    jobs = tmp_path / "jobs"
    shutil.copytree(JOBS, jobs)
    for name, change in extra.items():
        raw = yaml.safe_load((JOBS / f"{change.pop('from')}.yml").read_text())
        raw.update(name=name, **change)
        (jobs / f"{name}.yml").write_text(yaml.safe_dump(raw))
    return jobs


def _score(s, job, *args, ds=DAY, code=0, **env):
    res = runner.invoke(app, ["score", "--job", job, "--ds", ds.isoformat(), *args], env=_env(s, **env))
    assert res.exit_code == code, res.output
    return " ".join(res.output.split())


def test_parquet_source_in_s3_publishes_what_the_database_would(settings, tmp_path):
    """plan_choice reads the demo's Parquet export in the artifact store (a folder, moto's S3, SeaweedFS), in two
    shards of row groups; a twin job reading the same rows from the predictions database publishes the same."""
    (tmp_path / "from_db.sql").write_text(
        "SELECT customer_id, tenure_months, monthly_spend, sessions_30d, support_tickets_90d, days_since_last_login,\n"
        "       avg_session_minutes, discount_pct, plan, region, payment_method\nFROM demo.customer_activity WHERE ds = :ds\n"
    )
    jobs = _jobs(tmp_path, plan_choice_db={"from": "plan_choice", "source": {"sql": "from_db.sql"}})
    shutil.copy(tmp_path / "from_db.sql", jobs / "from_db.sql")
    s = settings.with_overrides(jobs_dir=jobs)
    said = _score(s, "plan_choice", "--shards", "2")
    _score(s, "plan_choice_db")
    lake, warehouse = _published(s, "plan_choice"), _published(s, "plan_choice_db")
    assert len(lake) == CUSTOMERS and "published" in said
    pd.testing.assert_frame_equal(lake, warehouse)
    # a day whose files have not arrived: refused up front, naming the location; the published day stays
    missing = DAY + timedelta(days=20)
    said = _score(s, "plan_choice", ds=missing, code=1)
    assert f"no Parquet data for plan_choice {missing}" in said and "does not exist" in said and "have arrived" in said, said
    pd.testing.assert_frame_equal(_published(s, "plan_choice"), lake)


def test_warehouse_connection_hides_its_password_and_matches_the_database(local_settings, warehouse, tmp_path):
    s = local_settings.with_overrides(
        jobs_dir=_jobs(tmp_path, churn_wh={"from": "churn", "source": {"connection": "warehouse", "sql": "churn.sql"}})
    )
    _score(s, "churn")
    said = _score(s, "churn_wh", "--shards", "3", NIGHTSCORE_CONN_WAREHOUSE=warehouse)
    assert "published" in said
    pd.testing.assert_frame_equal(_published(s, "churn_wh"), _published(s, "churn"))
    with db.engine(s).connect() as conn:  # the typed view: the key as the source's bigint
        row = conn.execute(
            sa.text("SELECT customer_id, score FROM predictions_churn_wh WHERE customer_id = 42 AND ds = :d"), {"d": DAY}
        ).one()
        kind = conn.execute(
            sa.text(
                "SELECT data_type FROM information_schema.columns WHERE table_name = 'predictions_churn_wh' AND column_name = 'customer_id'"
            )
        ).scalar()
    assert row.customer_id == 42 and kind == "bigint"
    # the warehouse down (a password in its URL): a clear error without the password, the published day kept
    before = _published(s, "churn_wh")
    down = sa.engine.make_url(warehouse).set(password=SECRET, port=9, host="127.0.0.1", query={}).render_as_string(hide_password=False)
    said = _score(s, "churn_wh", code=1, NIGHTSCORE_CONN_WAREHOUSE=down)
    assert "cannot connect to the source database of job 'churn_wh'" in said and SECRET not in said, said
    with db.engine(s).connect() as conn:
        errors = conn.execute(sa.text("SELECT coalesce(error, '') FROM scoring_runs WHERE job = 'churn_wh'")).scalars().all()
    assert errors and not any(SECRET in e for e in errors)
    pd.testing.assert_frame_equal(_published(s, "churn_wh"), before)


def test_key_of_two_columns_typed_view_and_quarantine_by_its_columns(local_settings, tmp_path):
    """basket_value's key is (store_id, customer_id): sharded by both, published as one text key, shown by its
    own columns and types in predictions_basket_value (which the reader role may read); a repeated key is
    quarantined and named by its columns."""
    s = local_settings
    _score(s, "basket_value", "--shards", "2")
    pub = _published(s, "basket_value")
    assert len(pub) == CUSTOMERS and pub["entity_id"].str.fullmatch(r"\d+\|\d+").all()
    with db.engine(s).begin() as conn:
        types = dict(
            conn.execute(
                sa.text(
                    "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'predictions_basket_value' "
                    "AND column_name IN ('store_id', 'customer_id')"
                )
            ).all()
        )
        conn.execute(sa.text("SET LOCAL ROLE nightscore_reader"))
        row = conn.execute(
            sa.text(
                "SELECT store_id, customer_id, score, label FROM predictions_basket_value WHERE store_id = 8 AND customer_id = 7 AND ds = :d"
            ),
            {"d": DAY},
        ).one()
    assert types == {"store_id": "integer", "customer_id": "bigint"}
    assert (row.store_id, row.customer_id) == (8, 7) and row.score == pytest.approx(pub.set_index("entity_id").loc["8|7", "score"])
    # a repeated key under policy quarantine: set aside, named by its columns
    text = (JOBS / "basket_value.sql").read_text().rstrip()
    (tmp_path / "dupe.sql").write_text(f"SELECT * FROM ({text}\n) AS a\nUNION ALL\nSELECT * FROM ({text}\n) AS b WHERE customer_id = 7\n")
    jobs = _jobs(
        tmp_path,
        basket_dupe={"from": "basket_value", "source": {"sql": "dupe.sql"}, "validation": {"policy": "quarantine", "max_bad_ratio": 0.01}},
    )
    shutil.copy(tmp_path / "dupe.sql", jobs / "dupe.sql")
    said = _score(s.with_overrides(jobs_dir=jobs), "basket_dupe")
    assert "(store_id=8, customer_id=7)" in said, said
    with db.engine(s).connect() as conn:
        q = conn.execute(sa.text("SELECT entity_id, row_values FROM quarantined_rows WHERE job = 'basket_dupe'")).one()
    assert q.entity_id == "8|7" and [(r["store_id"], r["customer_id"]) for r in q.row_values] == [(8, 7), (8, 7)]
    # a key column named like the text key: the view shows it once, typed
    with db.engine(s).begin() as conn:
        conn.execute(sa.text("""SELECT nightscore_job_view('keyed', '[{"name": "entity_id", "type": "bigint"}]')"""))
        cols = conn.execute(
            sa.text("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'predictions_keyed' ORDER BY ordinal_position")
        ).all()
    assert cols[0] == ("entity_id", "bigint") and [c for c, _ in cols].count("entity_id") == 1


def test_init_makes_each_jobs_view_from_its_source(local_settings):
    res = runner.invoke(app, ["init"], env=_env(local_settings))
    said = " ".join(res.output.split())
    assert res.exit_code == 0, res.output
    assert "view of churn: predictions_churn (customer_id bigint) created or updated" in said, said
    assert "view of basket_value: predictions_basket_value (store_id integer, customer_id bigint) created or updated" in said, said
    # plan_choice's Parquet day (the latest complete day) has not arrived in this store: its first run makes its view
    assert "view of plan_choice: source not readable now: the job's first run creates the view" in said, said
    res = runner.invoke(app, ["init"], env=_env(local_settings))
    assert "predictions_churn (customer_id bigint) up to date" in " ".join(res.output.split()), res.output
    with db.engine(local_settings).connect() as conn:
        views = dict(conn.execute(sa.text("SELECT job, key_columns FROM job_views")).all())
    assert views == {
        "churn": [{"name": "customer_id", "type": "bigint"}],
        "basket_value": [{"name": "store_id", "type": "integer"}, {"name": "customer_id", "type": "bigint"}],
    }


def test_a_retried_parquet_shard_replaces_exactly_its_keys(local_settings, tmp_path):
    """Parquet shards are row groups, not hashes of the key: a retry deletes the keys it loaded before, no others."""
    import uuid
    from datetime import UTC, datetime

    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipeline.publish import create_loading_table, drop_loading_table, load_shard, loading_table_name
    from pipeline.score import PREDICTION_SCHEMA

    run_id = str(uuid.uuid4())

    def part(keys: range, score: float):
        path = tmp_path / f"p{keys.start}_{score}.parquet"
        n = len(keys)
        columns = {
            "job": ["plan_choice"] * n,
            "ds": [DAY] * n,
            "entity_id": [str(k) for k in keys],
            "score": [score] * n,
            "label": ["basic"] * n,
            "model_name": ["plan_choice_xgb"] * n,
            "model_version": [1] * n,
            "run_id": [run_id] * n,
            "scored_at": [datetime.now(UTC)] * n,
            "scores": [None] * n,
        }
        pq.write_table(pa.table(columns, schema=PREDICTION_SCHEMA), path)
        return path

    eng = db.engine(local_settings)
    name = loading_table_name(run_id)
    create_loading_table(eng, name, "plan_choice", DAY, "multiclass")
    try:
        assert load_shard(local_settings, eng, part(range(0, 10), 0.1), name, 0, 2, clear=False) == 10
        assert load_shard(local_settings, eng, part(range(10, 25), 0.2), name, 1, 2, clear=False) == 15
        # shard 0 again (its second attempt, other scores): its 10 rows replaced, shard 1's 15 kept
        assert load_shard(local_settings, eng, part(range(0, 10), 0.3), name, 0, 2, clear=True, by_keys=True) == 10
        with eng.connect() as conn:
            rows = conn.execute(sa.text(f'SELECT score, count(*) FROM nightscore_staging."{name}" GROUP BY score ORDER BY score')).all()
        assert [(float(s), n) for s, n in rows] == [(0.2, 15), (0.3, 10)]
    finally:
        drop_loading_table(eng, name)
