"""System tests on a real Airflow with the CeleryExecutor, as the compose stack runs it (api-server,
scheduler, dag-processor and two Celery workers on loopback, Celery's broker on the tests' PostgreSQL):
a day scored in four shards spread over both workers and published once, and a backfill of three days
created through the REST API. Artifacts go to the S3 endpoint. One deployment serves the module."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from pipeline import db
from tests.conftest import DAY, drop_database
from tests.dags.conftest import connection_env
from tools.airflow_local import USER, _secrets, airflow_env, metadata_database, stop_group, wait_healthy

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api:
    def __init__(self, url: str) -> None:
        self.url, self.token = url, None

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


@pytest.fixture(scope="module")
def system_settings(pg_server, trained_template, s3_endpoint, tmp_path_factory):
    """One clone of the trained template for the module's Airflow, artifacts on the S3 endpoint."""
    from tests.conftest import _fill_store, create_database, make_settings

    tmp = tmp_path_factory.mktemp("system")
    url = create_database(pg_server, template=make_url(trained_template["url"]).database)
    s = make_settings(tmp / "home", url, f"s3://ns-{uuid.uuid4().hex[:12]}/artifacts", s3_endpoint_url=s3_endpoint.url)
    _fill_store(s, trained_template["artifacts"])
    yield s
    drop_database(pg_server, url)


@pytest.fixture(scope="module")
def airflow_server(system_settings, pg_server, tmp_path_factory):
    """Airflow with the CeleryExecutor, as the compose stack runs it: api-server, scheduler and dag-processor,
    and two Celery workers (one task at a time each) named w1 and w2 in nightscore's ledger. Celery's broker is
    its SQLAlchemy transport on the tests' PostgreSQL (no Redis needed), results in the same database."""
    tmp = tmp_path_factory.mktemp("airflow")
    home = tmp / "airflow"
    port = _free_port()
    metadata = metadata_database(pg_server, f"airflow_{uuid.uuid4().hex[:10]}")  # Airflow's metadata in PostgreSQL
    broker = make_url(metadata).set(drivername="postgresql+psycopg2").render_as_string(hide_password=False)
    env = airflow_env(home, metadata, port=port, log_ports=(_free_port(), _free_port()))
    env.update(connection_env(system_settings))
    env.update(
        AIRFLOW__CORE__EXECUTOR="CeleryExecutor",
        AIRFLOW__CELERY__BROKER_URL=f"sqla+{broker}",
        AIRFLOW__CELERY__RESULT_BACKEND=f"db+{broker}",
        AIRFLOW__CELERY__WORKER_CONCURRENCY="1",
        AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL="5",
    )
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True)
    _create_celery_tables(broker)
    log_path = tmp / "airflow.log"
    procs = []
    with open(log_path, "wb") as log:

        def start(*args: str, **extra: str) -> None:
            # each in its own process group: stopped with every process it started
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "airflow", *args],
                    env={**env, **extra},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )

        start("api-server")
        start("scheduler")
        start("dag-processor")
        for name in ("w1", "w2"):
            start(
                "celery", "worker", "--celery-hostname", f"{name}@%h", "--concurrency", "1", "--queues", "default",
                NIGHTSCORE_HOSTNAME=name, AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(_free_port()),
            )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(url, 300, procs[0])
            _wait_workers_ready(log_path, ("w1", "w2"), procs[-2:])
            api = Api(url)
            status, body = api.call("POST", "/auth/token", {"username": USER, "password": _secrets(home)["password"]})
            assert status in (200, 201), body
            api.token = body["access_token"]
            deadline = time.monotonic() + 180
            while api.call("GET", "/api/v2/dags/score_churn")[0] != 200:  # the dag-processor's first parse
                assert time.monotonic() < deadline, f"score_churn never appeared\n{_tail(log_path)}"
                time.sleep(2)
            # DAGs start paused; runs stay queued on a paused DAG (the UI's backfill form offers to unpause it).
            # Unpausing also lets the scheduler start the latest scheduled day, which fails validation here (no
            # source rows that day); the tests look at their own runs only.
            status, body = api.call("PATCH", "/api/v2/dags/score_churn", {"is_paused": False})
            assert status == 200, body
            yield api, log_path
        finally:
            for proc in reversed(procs):
                stop_group(proc)
            drop_database(pg_server, metadata)


def _create_celery_tables(broker: str) -> None:
    """Kombu's SQLAlchemy transport creates its tables on first connect without a retry, so two workers
    starting together can race on PostgreSQL's catalog and one of them dies; create them (and Celery's
    result tables) once, here, before any Airflow process starts."""
    from celery.backends.database.session import SessionManager
    from kombu import Connection

    with Connection(f"sqla+{broker}") as conn:
        conn.default_channel  # noqa: B018  (opening the channel creates kombu_queue and kombu_message)
    SessionManager().session_factory(broker).close()


def _wait_workers_ready(log_path, names: tuple[str, ...], procs: list[subprocess.Popen], timeout: float = 180) -> None:
    """Both Celery workers consuming before any run is made: otherwise the first one up takes every shard."""
    deadline = time.monotonic() + timeout
    while True:
        text = log_path.read_text(errors="replace")
        if all(re.search(rf"\b{name}@\S+ ready\.", text) for name in names):
            return
        dead = [p.args for p in procs if p.poll() is not None]
        assert not dead, f"a Celery worker exited: {dead}\n{_tail(log_path)}"
        assert time.monotonic() < deadline, f"Celery workers not ready\n{_tail(log_path)}"
        time.sleep(1)


def _tail(path, n=60) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-n:])


def _wait_for_runs(api, log_path, path: str, count: int, timeout: float = 480) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        status, listing = api.call("GET", path)
        assert status == 200, listing
        runs = listing["dag_runs"]
        states = sorted(r["state"] for r in runs)
        if any(s == "failed" for s in states):
            pytest.fail(f"a run failed: {runs}\n{_tail(log_path)}")
        if len(runs) == count and states == ["success"] * count:
            return runs
        assert time.monotonic() < deadline, f"runs not done: {states}\n{_tail(log_path)}"
        time.sleep(3)


def test_sharded_run_spreads_over_both_celery_workers_and_publishes_once(airflow_server, system_settings):
    """One manual run of a day in 4 shards: the mapped shard tasks run on both Celery workers, the day is
    published once, whole, by one run."""
    api, log_path = airflow_server
    status, body = api.call(
        "POST", "/api/v2/dags/score_churn/dagRuns", {"logical_date": None, "conf": {"ds": DAY.isoformat(), "shards": 4}}
    )
    assert status == 200, body
    run_id = body["dag_run_id"]
    _wait_for_runs(api, log_path, "/api/v2/dags/score_churn/dagRuns?run_type=manual&limit=10", 1)
    status, tis = api.call("GET", f"/api/v2/dags/score_churn/dagRuns/{run_id}/taskInstances?limit=50")
    assert status == 200, tis
    shard_tis = [t for t in tis["task_instances"] if t["task_id"] == "shard"]
    assert sorted(t["map_index"] for t in shard_tis) == [0, 1, 2, 3] and {t["state"] for t in shard_tis} == {"success"}
    eng = db.engine(system_settings)
    with eng.connect() as conn:
        [run] = conn.execute(sa.text("SELECT * FROM scoring_runs WHERE airflow_run_id = :r"), {"r": run_id}).mappings().all()
        parts = conn.execute(sa.text("SELECT * FROM run_shards WHERE run_id = :r ORDER BY shard"), {"r": run["run_id"]}).mappings().all()
        day = conn.execute(
            sa.text(
                "SELECT count(*) AS n, count(DISTINCT entity_id) AS keys, count(DISTINCT run_id) AS runs FROM predictions WHERE job = 'churn' AND ds = :d"
            ),
            {"d": DAY},
        ).one()
    assert run["status"] == "succeeded" and run["shards"] == 4 and run["rows_published"] == 3_000
    assert [p["status"] for p in parts] == ["loaded"] * 4 and sum(p["rows_loaded"] for p in parts) == 3_000
    assert {p["owner_host"] for p in parts} == {"w1", "w2"}, ([(p["shard"], p["owner_host"]) for p in parts], _tail(log_path))  # both workers
    assert all(p["owner_task"].startswith(f"score_churn.shard[{p['shard']}] ") for p in parts)
    assert (day.n, day.keys, day.runs) == (3_000, 3_000, 1)  # once, whole, from one run


def test_rest_backfill_of_three_days(airflow_server, system_settings):
    api, log_path = airflow_server
    days = [DAY + timedelta(days=i + 1) for i in range(3)]
    status, backfill = api.call(
        "POST",
        "/api/v2/backfills",
        {"dag_id": "score_churn", "from_date": f"{days[0]}T00:00:00Z", "to_date": f"{days[-1]}T00:00:00Z", "max_active_runs": 3},
    )
    assert status == 200, backfill
    runs = _wait_for_runs(api, log_path, "/api/v2/dags/score_churn/dagRuns?run_type=backfill&limit=10", 3)
    assert sorted(r["logical_date"][:10] for r in runs) == [d.isoformat() for d in days]
    with db.engine(system_settings).connect() as conn:
        per_day = dict(
            conn.execute(sa.text("SELECT ds, count(*) FROM predictions WHERE job = 'churn' AND ds > :d GROUP BY ds"), {"d": DAY}).all()
        )
        linked = conn.execute(
            sa.text("SELECT ds, airflow_run_id FROM scoring_runs WHERE status = 'succeeded' AND ds > :d ORDER BY ds"), {"d": DAY}
        ).all()
    assert per_day == {d: 3_000 for d in days}
    assert [row.ds for row in linked] == days
    assert sorted(row.airflow_run_id for row in linked) == sorted(r["dag_run_id"] for r in runs)
