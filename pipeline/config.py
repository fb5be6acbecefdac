"""Settings, read once from the environment, failing fast with the variable's name.

Outside Airflow every setting comes from ``NIGHTSCORE_*`` variables (``.env.example`` lists them).
Inside Airflow the DAGs build a :class:`Settings` from Airflow Connections instead.
With nothing set, everything lives under ``.nightscore/`` (the *embedded defaults*).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError

#: The repository root: ``pipeline/`` and ``sql/`` and ``dags/`` sit side by side in it.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
SQL_DIR = PROJECT_ROOT / "sql"


def _int_env(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(
            f"{name}={raw!r} is not a whole number", where="environment", fix=f"set {name} to a positive integer or unset it"
        ) from None
    if value <= 0:
        raise ConfigError(f"{name}={raw!r} must be positive", where="environment", fix=f"set {name} to a positive integer")
    return value


def _secret_file(env: dict[str, str], name: str) -> str | None:
    """The secret in the file ``$name`` names (the docker ``*_FILE`` convention), without its final newline.

    A secret read from a file is never pasted into a URL or JSON by a person, so any character works."""
    path = env.get(name)
    if not path:
        return None
    try:
        return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(
            f"{name}={path!r} cannot be read: {exc.strerror or exc}",
            where="environment",
            fix=f"point {name} at a readable file holding the secret, or unset it",
        ) from None


def _with_password(url: str, password: str) -> str:
    """``url`` with ``password`` in it, escaped so that ``@ / : # %`` and quotes survive."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).set(password=password).render_as_string(hide_password=False)
    except Exception as exc:
        raise ConfigError(
            "NIGHTSCORE_DATABASE_URL cannot be parsed", where="environment", fix="use postgresql://user@host:5432/dbname"
        ) from exc


@dataclass(frozen=True)
class Settings:
    """Everything a stage needs to know about its surroundings."""

    home: Path
    database_url: str | None  # None: the embedded PostgreSQL under ``home``
    artifact_uri: str
    jobs_dir: Path
    threads: int
    batch_rows: int
    # rows per GX validation run: GX's fixed cost per run is about a second for a 40-rule suite, so
    # validation takes bigger batches than scoring; memory holds one of them
    validate_batch_rows: int = 250_000
    # a shard scores and COPYs its rows while they are read (pipeline/run/shard.py); off: one stage after another
    stream: bool = True
    s3_endpoint_url: str | None = None
    # where a person's browser reaches the S3 server, for presigned links in the Airflow UI (default: the endpoint)
    s3_public_endpoint_url: str | None = None
    # a publish waits at most this long for a lock at a time (other sessions queue behind its wait) ...
    publish_lock_timeout_ms: int = 1_000
    # ... and keeps trying, with backoff, until this many seconds have passed
    publish_deadline_s: int = 600
    # a run's process refreshes its heartbeat this often; one silent for heartbeat_stale_s is gone
    heartbeat_s: int = 10
    heartbeat_stale_s: int = 120
    # between two Airflow tasks no process holds a run; one left that way this long is abandoned
    handover_timeout_s: int = 86_400
    # explicit S3 credentials (from an Airflow AWS connection); None: boto3's own chain (AWS_* variables, ...)
    s3_access_key: str | None = field(default=None, repr=False)
    s3_secret_key: str | None = field(default=None, repr=False)
    s3_region: str | None = None
    # run metrics: pushed to this Pushgateway, or (None) written as node-exporter textfiles in metrics_dir
    # (None: <home>/metrics); see pipeline/metrics.py
    pushgateway_url: str | None = None
    metrics_dir: Path | None = None
    # source connections' URLs by NAME in capitals: NIGHTSCORE_CONN_<NAME> (or its _FILE), and inside Airflow the
    # Connection a task resolves for its job (pipeline/sources.py)
    connections: dict[str, str] = field(default_factory=dict, repr=False)
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def embedded_database(self) -> bool:
        return self.database_url is None

    def with_overrides(self, **kw: object) -> Settings:
        return replace(self, **kw)  # type: ignore[arg-type]


def _names_nightscore(pyproject: Path) -> bool:
    import tomllib

    try:
        return bool(tomllib.loads(pyproject.read_text()).get("project", {}).get("name") == "nightscore")
    except (OSError, ValueError):
        return False


def find_home(env: Mapping[str, str], cwd: Path | None = None, fallback: Path | None = None) -> Path:
    """The home folder (``.nightscore``: the embedded database, artifacts, logs), found the way git finds its
    repository: ``NIGHTSCORE_HOME``, else the nearest folder from ``cwd`` upward that holds ``.nightscore/`` or
    a ``pyproject.toml`` naming the project ``nightscore`` (its ``.nightscore``), else ``fallback`` (an Airflow
    task: the project its DAGs come from). Outside any project: an error naming NIGHTSCORE_HOME; nothing is
    created."""
    if env.get("NIGHTSCORE_HOME"):
        return Path(env["NIGHTSCORE_HOME"]).expanduser().resolve()
    start = (cwd or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / ".nightscore").is_dir() or _names_nightscore(folder / "pyproject.toml"):
            return folder / ".nightscore"
    if fallback is not None:
        return fallback.resolve()
    raise ConfigError(
        f"{start} is not inside a nightscore project (no .nightscore/ folder or nightscore pyproject.toml here or above)",
        where="the current folder",
        fix="run the command from the project folder (or any folder below it), or set NIGHTSCORE_HOME to its .nightscore folder",
    )


def load_settings(env: dict[str, str] | None = None, *, cwd: Path | None = None, fallback_home: Path | None = None) -> Settings:
    """Build settings from ``env`` (default: ``os.environ``); the home by :func:`find_home`."""
    env = dict(os.environ if env is None else env)
    home = find_home(env, cwd, fallback_home)
    artifact_uri = env.get("NIGHTSCORE_ARTIFACT_URI") or str(home / "artifacts")
    if "://" in artifact_uri and not artifact_uri.startswith(("s3://", "file://")):
        raise ConfigError(
            f"NIGHTSCORE_ARTIFACT_URI={artifact_uri!r} has an unsupported scheme",
            where="environment",
            fix="use s3://bucket/prefix or a local folder path",
        )
    database_url = env.get("NIGHTSCORE_DATABASE_URL") or None
    if database_url and not database_url.startswith(("postgresql", "postgres://")):
        raise ConfigError(
            "NIGHTSCORE_DATABASE_URL must be a PostgreSQL URL",
            where="environment",
            fix="use postgresql://user:password@host:5432/dbname, or unset it for the embedded database",
        )
    db_password = _secret_file(env, "NIGHTSCORE_DATABASE_PASSWORD_FILE")
    if db_password is not None:
        if not database_url:
            raise ConfigError(
                "NIGHTSCORE_DATABASE_PASSWORD_FILE is set but NIGHTSCORE_DATABASE_URL is not",
                where="environment",
                fix="set NIGHTSCORE_DATABASE_URL=postgresql://user@host:5432/dbname (no password in it)",
            )
        database_url = _with_password(database_url, db_password)
    s3_secret = _secret_file(env, "AWS_SECRET_ACCESS_KEY_FILE")
    _register_secrets(database_url, env.get("AWS_SECRET_ACCESS_KEY"), s3_secret)
    return Settings(
        home=home,
        database_url=database_url,
        artifact_uri=artifact_uri,
        jobs_dir=Path(env.get("NIGHTSCORE_JOBS_DIR") or PROJECT_ROOT / "dags" / "jobs").resolve(),
        threads=_int_env(env, "NIGHTSCORE_THREADS", os.cpu_count() or 1),
        batch_rows=_int_env(env, "NIGHTSCORE_BATCH_ROWS", 250_000),
        validate_batch_rows=_int_env(env, "NIGHTSCORE_VALIDATE_BATCH_ROWS", 250_000),
        stream=(env.get("NIGHTSCORE_STREAM") or "1").strip().lower() not in ("0", "false", "no", "off"),
        s3_endpoint_url=env.get("AWS_ENDPOINT_URL") or None,
        s3_public_endpoint_url=env.get("NIGHTSCORE_S3_PUBLIC_URL") or None,
        publish_lock_timeout_ms=_int_env(env, "NIGHTSCORE_PUBLISH_LOCK_TIMEOUT_MS", 1_000),
        publish_deadline_s=_int_env(env, "NIGHTSCORE_PUBLISH_DEADLINE_SECONDS", 600),
        heartbeat_s=_int_env(env, "NIGHTSCORE_HEARTBEAT_SECONDS", 10),
        heartbeat_stale_s=_int_env(env, "NIGHTSCORE_HEARTBEAT_STALE_SECONDS", 120),
        handover_timeout_s=_int_env(env, "NIGHTSCORE_HANDOVER_TIMEOUT_SECONDS", 86_400),
        # with a secret file the key pair is explicit; otherwise boto3's own chain finds the credentials
        s3_access_key=(env.get("AWS_ACCESS_KEY_ID") or None) if s3_secret is not None else None,
        s3_secret_key=s3_secret,
        pushgateway_url=env.get("NIGHTSCORE_PUSHGATEWAY_URL") or None,
        metrics_dir=Path(env["NIGHTSCORE_METRICS_DIR"]).resolve() if env.get("NIGHTSCORE_METRICS_DIR") else None,
        connections=_connections(env),
    )


def _connections(env: dict[str, str]) -> dict[str, str]:
    """Every ``NIGHTSCORE_CONN_<NAME>`` (or ``..._FILE``) as {NAME: URL}, their passwords registered as secrets."""
    names = {k.removeprefix("NIGHTSCORE_CONN_").removesuffix("_FILE") for k in env if k.startswith("NIGHTSCORE_CONN_")}
    found = {name: url for name in sorted(names) if name and (url := connection_url(name, env))}
    for url in found.values():
        _register_secrets(url)
    return found


# --------------------------------------------------------------------------------------------
# Read at each use. These are not fields of Settings: their callers are given no Settings (the alert
# senders, which the DAGs' callbacks call too; the run ledger's owner record; the fault-injection points;
# the Airflow tasks, which build their Settings from these), and a test or a process changes them between
# calls. Each takes ``env`` (default: ``os.environ``).
# --------------------------------------------------------------------------------------------
def _environ(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


def ledger_hostname(env: Mapping[str, str] | None = None) -> str:
    """The name this machine's processes are recorded under in the run ledger: ``NIGHTSCORE_HOSTNAME``
    (for several workers sharing one machine or one container image), else the host name."""
    return _environ(env).get("NIGHTSCORE_HOSTNAME") or socket.gethostname()


def alert_webhook_url(variable: str, env: Mapping[str, str] | None = None) -> str | None:
    """The webhook URL in the environment variable a job spec's ``alerts.webhook_env`` names (the demo job:
    ``NIGHTSCORE_ALERT_WEBHOOK``); None when it is unset or empty. The URL is a secret (a Slack URL carries
    its token), so specs name the variable, never the URL."""
    return _environ(env).get(variable) or None


def smtp_url(env: Mapping[str, str] | None = None) -> str | None:
    """The SMTP server for alert emails, ``NIGHTSCORE_SMTP_URL`` (``smtp://user:password@host:587``,
    ``smtps://`` for TLS on connect); None when unset or empty."""
    return _environ(env).get("NIGHTSCORE_SMTP_URL") or None


def alert_from(env: Mapping[str, str] | None = None) -> str:
    """The sender of alert emails, ``NIGHTSCORE_ALERT_FROM`` (default ``nightscore@localhost``)."""
    return _environ(env).get("NIGHTSCORE_ALERT_FROM", "nightscore@localhost")


def failpoint(env: Mapping[str, str] | None = None) -> str | None:
    """The fault-injection point to pause at, ``NIGHTSCORE_FAILPOINT`` (tests only; unset: none)."""
    return _environ(env).get("NIGHTSCORE_FAILPOINT")


def failpoint_file(env: Mapping[str, str] | None = None) -> Path:
    """The marker file of a fault-injection pause, ``NIGHTSCORE_FAILPOINT_FILE`` (needed with ``NIGHTSCORE_FAILPOINT``)."""
    path = _environ(env).get("NIGHTSCORE_FAILPOINT_FILE")
    if not path:
        raise ConfigError(
            "NIGHTSCORE_FAILPOINT is set but NIGHTSCORE_FAILPOINT_FILE is not",
            where="environment",
            fix="set NIGHTSCORE_FAILPOINT_FILE to the marker file the test watches, or unset NIGHTSCORE_FAILPOINT",
        )
    return Path(path)


def connection_url(name: str, env: Mapping[str, str] | None = None) -> str | None:
    """The URL of a job source's connection ``name`` outside Airflow: ``NIGHTSCORE_CONN_<NAME>`` (the name in
    capitals), else the contents of the file ``NIGHTSCORE_CONN_<NAME>_FILE`` names (for a secret mounted as a
    file); None when neither is set."""
    environ = _environ(env)
    var = "NIGHTSCORE_CONN_" + name.upper()
    if environ.get(var):
        return environ[var].strip()
    secret = _secret_file(dict(environ), var + "_FILE")
    return secret.strip() if secret else None


def jobs_dir_from_env(env: Mapping[str, str] | None = None) -> Path | None:
    """The job specs' folder ``NIGHTSCORE_JOBS_DIR`` names, or None when it is unset or empty (inside Airflow
    the DAGs then use the ``jobs`` folder beside their files; :func:`load_settings` uses ``dags/jobs``)."""
    value = _environ(env).get("NIGHTSCORE_JOBS_DIR")
    return Path(value) if value else None


def airflow_connection_ids(env: Mapping[str, str] | None = None) -> tuple[str, str]:
    """The ids of the Airflow Connections a task reads: ``NIGHTSCORE_POSTGRES_CONN_ID`` (default
    ``nightscore_postgres``) and ``NIGHTSCORE_AWS_CONN_ID`` (default ``nightscore_s3``)."""
    environ = _environ(env)
    return (
        environ.get("NIGHTSCORE_POSTGRES_CONN_ID", "nightscore_postgres"),
        environ.get("NIGHTSCORE_AWS_CONN_ID", "nightscore_s3"),
    )


def _register_secrets(database_url: str | None, *secrets: str | None) -> None:
    """Mask the database password and the given secrets in every message from now on."""
    from pipeline.errors import register_secret

    if database_url:
        try:
            from sqlalchemy.engine import make_url

            register_secret(make_url(database_url).password)
        except Exception:  # an unparseable URL is reported where it is used
            pass
    for secret in secrets:
        register_secret(secret)


def settings_from_connections(base: Settings, postgres_uri: str | None, aws: dict[str, Any] | None) -> Settings:
    """Settings for a task inside Airflow: the database from a Postgres connection's URI, S3 access from an
    AWS connection (``login``/``password`` as keys, ``extra.endpoint_url`` for an S3-compatible server, ``extra.region_name``)."""
    changes: dict[str, Any] = {}
    if postgres_uri:
        changes["database_url"] = postgres_uri
    if aws:
        extra = aws.get("extra") or {}
        if isinstance(extra, str):
            import json

            extra = json.loads(extra or "{}")
        changes.update(
            s3_endpoint_url=extra.get("endpoint_url") or base.s3_endpoint_url,
            s3_access_key=aws.get("login") or None,
            s3_secret_key=aws.get("password") or None,
            s3_region=extra.get("region_name") or None,
        )
    _register_secrets(postgres_uri, (aws or {}).get("password"))
    return replace(base, **changes)
