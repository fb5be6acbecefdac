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
    _JOBS_DIR[0] = jobs_dir_from_env() or folder  # the variable as it is now: a test or a worker may set it late
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


def source_uri(conn: Any) -> str:
    """A source database's URL from its Airflow Connection: a Postgres connection as libpq wants it, a SQLite
    one from its host (the file's path), any other from the connection's own URI (``dialect://...``)."""
    if conn.conn_type in ("postgres", "postgresql"):
        return postgres_uri(conn)
    if conn.conn_type == "sqlite":
        return f"sqlite:///{conn.host}"
    return str(conn.get_uri())


def source_connections(job: str | None) -> dict[str, str]:
    """The URL of the job's source connection (``source.connection``), when Airflow has a Connection of that
    name; outside Airflow's Connections the task falls back to NIGHTSCORE_CONN_<NAME> like the CLI."""
    if job is None:
        return {}
    name = load_spec(job).source.connection
    conn = _connection(name) if name else None
    if conn is None:
        return {}
    from pipeline.errors import register_secret

    register_secret(conn.password)  # never in a log line or an error message
    log.info("source: Airflow connection %s (%s)", name, conn.conn_type)
    return {name.upper(): source_uri(conn)}


def task_settings(job: str | None = None) -> Any:
    """`pipeline` settings for this task: environment defaults, then the Airflow connections if they exist.

    Without a ``nightscore_postgres`` connection the embedded PostgreSQL under ``.nightscore/`` is used
    (what ``make airflow`` runs on); without ``nightscore_s3`` the artifact store is NIGHTSCORE_ARTIFACT_URI.
    With ``job``, its source's connection (``source.connection``) is resolved here too and handed to
    ``pipeline`` as a plain URL (:func:`source_connections`).
    """
    from pipeline.config import load_settings, settings_from_connections

    postgres_id, aws_id = airflow_connection_ids()
    from pipeline.config import PROJECT_ROOT

    # a worker's folder is anywhere: without NIGHTSCORE_HOME, the home of the project the DAGs come from
    base = load_settings(fallback_home=PROJECT_ROOT / ".nightscore").with_overrides(jobs_dir=jobs_dir())
    pg = _connection(postgres_id)
    aws = _connection(aws_id)
    aws_dict = None if aws is None else {"login": aws.login, "password": aws.password, "extra": aws.extra_dejson}
    settings = settings_from_connections(base, None if pg is None else postgres_uri(pg), aws_dict)
    sources = source_connections(job)
    if sources:  # the Airflow Connection wins over a NIGHTSCORE_CONN_<NAME> variable of the same name
        settings = settings.with_overrides(connections={**settings.connections, **sources})
    log.info(
        "database: %s (%s); artifacts: %s (%s)",
        "connection " + postgres_id if pg is not None else "NIGHTSCORE_DATABASE_URL or the embedded server",
        "set" if pg is not None else "no Airflow connection",
        settings.artifact_uri,
        "connection " + aws_id if aws is not None else "environment",
    )
    return settings
