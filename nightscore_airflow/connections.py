"""Where a task's settings come from inside Airflow: the job specs' folder beside the DAG files, and the
Airflow Connections ``nightscore_postgres`` and ``nightscore_s3`` (their ids overridable, see
:func:`pipeline.config.airflow_connection_ids`), turned into plain :class:`pipeline.config.Settings`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pipeline.config import airflow_connection_ids, jobs_dir_from_env

log = logging.getLogger(__name__)

# the job specs: NIGHTSCORE_JOBS_DIR, else the `jobs` folder beside the DAG files (use_jobs_dir)
_JOBS_DIR: list[Path] = [jobs_dir_from_env() or Path(__file__).resolve().parent.parent / "dags" / "jobs"]


def use_jobs_dir(folder: Path) -> Path:
    """Called by each DAG file with the ``jobs`` folder beside it: the job specs its DAGs and tasks read,
    unless NIGHTSCORE_JOBS_DIR names others. Returns the folder in use."""
    if jobs_dir_from_env() is None:
        _JOBS_DIR[0] = folder
    return _JOBS_DIR[0]


def jobs_dir() -> Path:
    """The folder of job specs the DAGs were built from."""
    return _JOBS_DIR[0]


def load_spec(job: str) -> Any:
    """The job's spec, from the folder the DAGs were built from (loaded once per process while unchanged)."""
    from pipeline.jobs import load_job

    return load_job(jobs_dir(), job)


def _connection(conn_id: str) -> Any | None:
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None


def postgres_uri(pg: Any) -> str:
    """A libpq URL from an Airflow Postgres connection (a unix-socket directory as host goes in the query,
    as libpq expects; only libpq's own options are taken from the extra)."""
    import sqlalchemy as sa

    extra = pg.extra_dejson or {}
    query = {
        k: str(v)
        for k, v in extra.items()
        if k in ("sslmode", "sslrootcert", "sslcert", "sslkey", "options", "application_name", "connect_timeout")
    }
    host = pg.host or None
    if host and host.startswith("/"):
        query["host"], host = host, None
    return sa.URL.create(
        "postgresql",
        username=pg.login or None,
        password=pg.password or None,
        host=host,
        port=pg.port or None,
        database=pg.schema or None,
        query=query,
    ).render_as_string(hide_password=False)


def task_settings() -> Any:
    """`pipeline` settings for this task: environment defaults, then the Airflow connections if they exist.

    Without a ``nightscore_postgres`` connection the embedded PostgreSQL under ``.nightscore/`` is used
    (what ``make airflow`` runs on); without ``nightscore_s3`` the artifact store is NIGHTSCORE_ARTIFACT_URI.
    """
    from pipeline.config import load_settings, settings_from_connections

    postgres_id, aws_id = airflow_connection_ids()
    base = load_settings().with_overrides(jobs_dir=jobs_dir())
    pg = _connection(postgres_id)
    aws = _connection(aws_id)
    aws_dict = None if aws is None else {"login": aws.login, "password": aws.password, "extra": aws.extra_dejson}
    settings = settings_from_connections(base, None if pg is None else postgres_uri(pg), aws_dict)
    log.info(
        "database: %s (%s); artifacts: %s (%s)",
        "connection " + postgres_id if pg is not None else "NIGHTSCORE_DATABASE_URL or the embedded server",
        "set" if pg is not None else "no Airflow connection",
        settings.artifact_uri,
        "connection " + aws_id if aws is not None else "environment",
    )
    return settings
