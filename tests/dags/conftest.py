"""Airflow for the DAG tests: a throwaway AIRFLOW_HOME with a SQLite metadata database, this project's DAGs.

Airflow reads its configuration when it is first imported, so the environment is set here, at collection,
before any test module imports it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from pipeline.config import PROJECT_ROOT

AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="nightscore-airflow-"))
AIRFLOW_ENV = {
    "AIRFLOW_HOME": str(AIRFLOW_HOME),
    "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{AIRFLOW_HOME / 'airflow.db'}",
}
os.environ.update(AIRFLOW_ENV)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Migrate the metadata database once per session (a few seconds)."""
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True, env=os.environ.copy())
    return AIRFLOW_HOME


def connection_env(settings) -> dict[str, str]:
    """The Airflow connections (as AIRFLOW_CONN_* JSON) and nightscore variables a worker would get."""
    url = make_url(settings.database_url)
    pg = {
        "conn_type": "postgres",
        "login": url.username,
        "password": url.password or "",
        "host": url.host or url.query.get("host"),
        "port": url.port,
        "schema": url.database,
    }
    env = {
        "AIRFLOW_CONN_NIGHTSCORE_POSTGRES": json.dumps({k: v for k, v in pg.items() if v is not None}),
        "NIGHTSCORE_HOME": str(settings.home),
        "NIGHTSCORE_ARTIFACT_URI": settings.artifact_uri,
        "NIGHTSCORE_THREADS": str(settings.threads),
        "NIGHTSCORE_BATCH_ROWS": str(settings.batch_rows),
    }
    if settings.s3_endpoint_url:
        env["AIRFLOW_CONN_NIGHTSCORE_S3"] = json.dumps(
            {
                "conn_type": "aws",
                "login": "testing",
                "password": "testing",
                "extra": {"endpoint_url": settings.s3_endpoint_url, "region_name": "us-east-1"},
            }
        )
    return env


@pytest.fixture()
def airflow_settings(settings, airflow_db, monkeypatch):
    """``settings`` (local folder or S3), handed to the DAGs the way Airflow would: through connections."""
    for k, v in connection_env(settings).items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("NIGHTSCORE_DATABASE_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    return settings
