"""Airflow for the DAG tests: a throwaway AIRFLOW_HOME with a SQLite metadata database, this project's DAGs.

Airflow reads its configuration when it is first imported, so the environment is set here, at collection,
before any test module imports it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from pipeline.config import PROJECT_ROOT
from tools.airflow_celery import connection_env

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


@pytest.fixture()
def airflow_settings(settings, airflow_db, monkeypatch):
    """``settings`` (local folder or S3), handed to the DAGs the way Airflow would: through connections."""
    for k, v in connection_env(settings).items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("NIGHTSCORE_DATABASE_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    return settings
