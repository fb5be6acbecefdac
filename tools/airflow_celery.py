"""Airflow with the CeleryExecutor on loopback, as the compose stack runs it: api-server, scheduler,
dag-processor and Celery workers, Celery's broker and results on a PostgreSQL server (kombu's SQLAlchemy
transport: no Redis needed). The system test (``tests/dags/test_airflow_system.py``) and ``make load``'s
``--airflow`` mode start it through :func:`celery_deployment`; :class:`Api` talks to its REST API.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline import db
from tools.airflow_local import USER, _secrets, airflow_env, metadata_database, stop_group, wait_healthy


class Api:
    """The deployment's REST API (``/api/v2``) with a JWT from ``/auth/token``."""

    def __init__(self, url: str) -> None:
        self.url, self.token, self.password = url, None, ""
        self.webhook: Any = None  # the system test's alert receiver

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        req = urllib.request.Request(f"{self.url}{path}", method=method, data=None if body is None else json.dumps(body).encode())
        req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")

    def login(self, password: str) -> None:
        status, body = self.call("POST", "/auth/token", {"username": USER, "password": password})
        if status not in (200, 201):
            raise RuntimeError(f"Airflow refused the login: {status} {body}")
        self.token, self.password = body["access_token"], password


def connection_env(settings: Any) -> dict[str, str]:
    """The Airflow connections (as AIRFLOW_CONN_* JSON) and nightscore variables a worker gets for ``settings``
    (S3 credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, else the test servers' ``testing``)."""
    import os

    from sqlalchemy.engine import make_url

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
                "login": os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
                "password": os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
                "extra": {"endpoint_url": settings.s3_endpoint_url, "region_name": settings.s3_region or "us-east-1"},
            }
        )
    return env


_PORTS_GIVEN: set[int] = set()


def free_port() -> int:
    """A free loopback port below the kernel's ephemeral range (Linux: from 32768), never one given before in
    this process. A server started with it binds some of its ports only later (SeaweedFS's WebDAV once S3
    answers); an ephemeral port could meanwhile be taken by any outgoing connection, which happened once and
    stopped SeaweedFS mid-session."""
    import random
    import socket

    while True:
        port = random.randrange(20_000, 32_000)
        if port in _PORTS_GIVEN:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _PORTS_GIVEN.add(port)
        return port


def create_celery_tables(broker: str) -> None:
    """Kombu's SQLAlchemy transport creates its tables, and a queue's row, on first use without a retry, so two
    workers starting together can race on PostgreSQL's catalog or on the row and one of them dies; create them
    (the ``default`` queue's row, and Celery's result tables) once, before any Airflow process starts."""
    import sqlalchemy as sa
    from celery.backends.database.session import SessionManager
    from kombu import Connection

    with Connection(f"sqla+{broker}") as conn:
        channel = conn.default_channel  # its first session creates kombu's tables and sequences
        # and the queue's row: each worker creates it on its first poll when missing, and two workers polling at
        # once both inserted it (a unique violation killed one: a flake seen once in a fresh-clone run)
        channel._get_or_create("default")
        channel.session.close()
    SessionManager().session_factory(broker).close()
    eng = sa.create_engine(broker)
    with eng.connect() as db_conn:
        tables = set(sa.inspect(db_conn).get_table_names())
    eng.dispose()
    if not {"kombu_queue", "kombu_message", "celery_taskmeta"} <= tables:
        raise RuntimeError(f"Celery's tables were not created: {sorted(tables)}")


def tail(path: Path, n: int = 60) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-n:])


def wait_workers_ready(log_path: Path, names: list[str], procs: list[subprocess.Popen], timeout: float = 180) -> None:
    """Every Celery worker consuming before any run is made: otherwise the first one up takes every task."""
    deadline = time.monotonic() + timeout
    while True:
        text = log_path.read_text(errors="replace")
        if all(re.search(rf"\b{name}@\S+ ready\.", text) for name in names):
            return
        dead = [p.args for p in procs if p.poll() is not None]
        if dead:
            raise RuntimeError(f"a Celery worker exited: {dead}\n{tail(log_path)}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"Celery workers not ready\n{tail(log_path)}")
        time.sleep(1)


@dataclass
class Deployment:
    api: Api
    log_path: Path
    workers: dict[str, subprocess.Popen] = field(default_factory=dict)  # by the worker's name
    procs: list[subprocess.Popen] = field(default_factory=list)


@contextmanager
def celery_deployment(
    home: Path,
    server_url: str,
    env_extra: dict[str, str],
    *,
    workers: tuple[str, ...] = ("w1", "w2"),
    concurrency: int = 1,
    port_fn: Callable[[], int] = free_port,
    wait_dags: tuple[str, ...] = (),
) -> Iterator[Deployment]:
    """Start the deployment under ``home`` (AIRFLOW_HOME ``home/airflow``, the log ``home/airflow.log``), its
    metadata, broker and results in a new database on ``server_url``'s server (dropped at the end), every
    process with ``env_extra`` on top (connections, NIGHTSCORE_JOBS_DIR ...). Workers are named in nightscore's
    ledger by ``workers`` (NIGHTSCORE_HOSTNAME), each taking ``concurrency`` tasks at a time. Yields once the
    API answers, the login works, every worker consumes and each DAG of ``wait_dags`` has been parsed."""
    from sqlalchemy.engine import make_url

    home.mkdir(parents=True, exist_ok=True)
    port = port_fn()
    metadata = metadata_database(server_url, f"airflow_{uuid.uuid4().hex[:10]}")  # Airflow's metadata in PostgreSQL
    broker = make_url(metadata).set(drivername="postgresql+psycopg2").render_as_string(hide_password=False)
    env = airflow_env(home / "airflow", metadata, port=port, log_ports=(port_fn(), port_fn()))
    env["AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL"] = "5"  # a new spec's DAG soon (env_extra may say otherwise)
    env.update(env_extra)
    env.update(
        AIRFLOW__CORE__EXECUTOR="CeleryExecutor",
        AIRFLOW__CELERY__BROKER_URL=f"sqla+{broker}",
        AIRFLOW__CELERY__RESULT_BACKEND=f"db+{broker}",
        AIRFLOW__CELERY__WORKER_CONCURRENCY=str(concurrency),
        # the pipeline's modules imported once per worker, before its pool forks (as the compose stack does)
        AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS="nightscore_airflow.celery_config.CELERY_CONFIG",
    )
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True)
    create_celery_tables(broker)
    log_path = home / "airflow.log"
    deployment = Deployment(Api(f"http://127.0.0.1:{port}"), log_path)
    try:
        with open(log_path, "wb") as log:

            def start(*args: str, **extra: str) -> subprocess.Popen:
                # each in its own process group: stopped with every process it started
                proc = subprocess.Popen(
                    [sys.executable, "-m", "airflow", *args], env={**env, **extra}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
                deployment.procs.append(proc)
                return proc

            api_server = start("api-server")
            start("scheduler")
            start("dag-processor")
            for name in workers:
                deployment.workers[name] = start(
                    "celery", "worker", "--celery-hostname", f"{name}@%h", "--concurrency", str(concurrency), "--queues", "default",
                    NIGHTSCORE_HOSTNAME=name, AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(port_fn()),
                )  # fmt: skip
            wait_healthy(deployment.api.url, 300, api_server)
            wait_workers_ready(log_path, list(workers), list(deployment.workers.values()))
            deployment.api.login(_secrets(home / "airflow")["password"])
            deadline = time.monotonic() + 180
            for dag_id in wait_dags:
                while deployment.api.call("GET", f"/api/v2/dags/{dag_id}")[0] != 200:  # the dag-processor's first parse
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{dag_id} never appeared\n{tail(log_path)}")
                    time.sleep(2)
            yield deployment
    finally:
        for proc in reversed(deployment.procs):
            stop_group(proc)
        db.drop_database(server_url, str(make_url(metadata).database))
