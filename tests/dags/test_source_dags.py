"""A job whose source is another database, named by an Airflow Connection: its DAG, run with ``dag.test()``,
resolves the connection in the task and publishes what the same rows publish from the predictions database."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
import yaml
from sqlalchemy.engine import make_url

from pipeline.config import PROJECT_ROOT
from tests.conftest import CUSTOMERS, DAY
from tests.dags.conftest import connection_env
from tests.dags.test_dag_runs import _at, _states, dag
from tests.integration.test_kinds_jobs import _published

pytestmark = [pytest.mark.integration, pytest.mark.airflow]
JOBS = PROJECT_ROOT / "dags" / "jobs"


def test_source_from_an_airflow_connection(local_settings, airflow_db, warehouse, monkeypatch, tmp_path):
    jobs = tmp_path / "jobs"
    shutil.copytree(JOBS, jobs)
    raw = yaml.safe_load((JOBS / "churn.yml").read_text())
    raw.update(name="churn_wh", source={"connection": "warehouse", "sql": "churn.sql"}, tags=["warehouse"])
    (jobs / "churn_wh.yml").write_text(yaml.safe_dump(raw))
    for k, v in connection_env(local_settings).items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("NIGHTSCORE_DATABASE_URL", raising=False)
    monkeypatch.delenv("NIGHTSCORE_CONN_WAREHOUSE", raising=False)  # only Airflow knows the warehouse
    monkeypatch.setenv("NIGHTSCORE_JOBS_DIR", str(jobs))
    url = make_url(warehouse)
    conn = {"conn_type": "postgres", "login": url.username, "password": url.password or "", "schema": url.database}
    conn.update({"host": url.host or url.query.get("host"), "port": url.port or int(url.query.get("port", 5432))})
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", json.dumps({k: v for k, v in conn.items() if v not in (None, "")}))
    for job in ("churn", "churn_wh"):
        dr = dag(f"score_{job}").test(logical_date=_at(DAY))
        assert str(dr.state) == "success", _states(dr)
    wh, own = _published(local_settings, "churn_wh"), _published(local_settings, "churn")
    assert len(wh) == CUSTOMERS
    pd.testing.assert_frame_equal(wh, own)
