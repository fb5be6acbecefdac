"""The README's Airflow commands, as pasted into a second terminal beside ``make airflow``: ``bin/airflow``
runs the airflow command with make airflow's settings (here pointed at the tests' PostgreSQL and a
throwaway home through the NIGHTSCORE_* variables a user may also set)."""

from __future__ import annotations

import os
import re
import subprocess
import uuid

import pytest
from sqlalchemy.engine import make_url

from pipeline.config import PROJECT_ROOT
from tests.conftest import create_database, drop_database

pytestmark = [pytest.mark.integration, pytest.mark.airflow]


def readme_command(prefix: str) -> str:
    """The README's shell command starting with ``prefix``, continuation lines joined."""
    text = (PROJECT_ROOT / "docs" / "airflow.md").read_text()
    match = re.search(rf"^{re.escape(prefix)}.*?(?<!\\)$", text, flags=re.M | re.S)
    assert match, f"the README has no command starting with {prefix!r}"
    return match.group(0)


def test_bin_airflow_runs_the_readme_backfill_command_in_a_second_terminal(pg_server, tmp_path):
    url = create_database(pg_server)
    airflow_db = f"airflow_{uuid.uuid4().hex[:10]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}  # a fresh terminal: no Airflow settings
    env.update(
        NIGHTSCORE_DATABASE_URL=url,
        NIGHTSCORE_HOME=str(tmp_path / "home"),
        NIGHTSCORE_AIRFLOW_HOME=str(tmp_path / "airflow"),
        NIGHTSCORE_AIRFLOW_DATABASE=airflow_db,
    )

    def sh(command: str) -> str:
        done = subprocess.run(["bash", "-c", command], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done.stdout + done.stderr

    try:
        sh("bin/airflow db migrate")  # what make airflow's standalone does on its first start
        sh("bin/airflow dags reserialize")  # what its dag-processor does
        assert "score_churn" in sh("bin/airflow dags list")
        command = readme_command("bin/airflow backfill create")
        assert "--dag-run-conf" in command and "model_version" in command
        out = sh(command + " --dry-run")
        planned = re.findall(r"^\| (\d{4}-\d{2}-\d{2}) 00:00:00\+00:00 ", out, flags=re.M)  # the table of runs to be attempted
        assert planned == [f"2026-11-0{d}" for d in range(1, 8)], out[-2000:]
        assert "dag_run_conf = {'model_version': 1}" in out  # the pinned version goes with every run
    finally:
        drop_database(pg_server, url)
        drop_database(pg_server, make_url(url).set(database=airflow_db).render_as_string(hide_password=False))
