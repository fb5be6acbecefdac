"""Fault injection on real parts: `nightscore` processes killed at named points, a PostgreSQL server of the
tests' own stopped and restarted, backends terminated, an S3 endpoint taken away.

A run is started as a real process (``python -m pipeline.cli score``) that pauses at a named point
(:mod:`pipeline.failpoints`) until the test has done its damage. Each test then checks the promises:
the day is the whole old day or the whole new day, the ledger agrees with the table, nothing is left
behind once the next command ran, and the message is one paragraph.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from pipeline import db
from pipeline.config import PROJECT_ROOT, Settings
from pipeline.embedded import EmbeddedServer, bin_dir
from tests.conftest import CUSTOMERS, DAY, _fill_store, make_settings

JOB = "churn"
runner = CliRunner()


def cli_env(s: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NIGHTSCORE_")}
    env.update(
        NIGHTSCORE_HOME=str(s.home),
        NIGHTSCORE_DATABASE_URL=s.database_url or "",
        NIGHTSCORE_ARTIFACT_URI=s.artifact_uri,
        NIGHTSCORE_JOBS_DIR=str(s.jobs_dir),
        NIGHTSCORE_THREADS="2",
        NIGHTSCORE_BATCH_ROWS=str(s.batch_rows),
        NIGHTSCORE_HEARTBEAT_SECONDS="1",
        PYTHONPATH=str(PROJECT_ROOT),
    )
    if s.s3_endpoint_url:
        env["AWS_ENDPOINT_URL"] = s.s3_endpoint_url
    env.update(extra)
    return env


class Run:
    """``nightscore score`` for DAY in a process of its own, optionally paused at a failpoint."""

    def __init__(self, s: Settings, tmp_path: Path, failpoint: str | None = None, args: list[str] | None = None, **env: str) -> None:
        self.marker = tmp_path / f"failpoint-{uuid.uuid4().hex[:8]}"
        extra = {"NIGHTSCORE_FAILPOINT": failpoint, "NIGHTSCORE_FAILPOINT_FILE": str(self.marker)} if failpoint else {}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", *(args or ["score", "--job", JOB, "--ds", DAY.isoformat()])],
            env=cli_env(s, **extra, **env),
            cwd=str(PROJECT_ROOT),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def wait_at_point(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while not self.marker.exists():
            if self.proc.poll() is not None:
                out, err = self.proc.communicate()
                pytest.fail(f"the run ended (exit {self.proc.returncode}) before its failpoint:\n{out}\n{err}")
            if time.monotonic() > deadline:
                self.proc.kill()
                pytest.fail("the run did not reach its failpoint in time")
            time.sleep(0.05)

    def release(self) -> None:
        Path(f"{self.marker}.go").touch()

    def finish(self, timeout: float = 240) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err


def assert_one_paragraph(stderr: str, *words: str) -> None:
    """The error a user reads: one paragraph (no traceback), naming what, where and how to fix it."""
    assert "Traceback" not in stderr, stderr
    # log lines (WARNING ...) may come first; the message is the last thing printed, and one paragraph
    lines = stderr.strip().splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(("error:", "interrupted by"))]
    assert starts, f"no error message at all: {stderr}"
    paragraph = lines[starts[-1] :]
    assert all(line.strip() for line in paragraph), f"more than one paragraph: {paragraph}"
    last = " ".join(" ".join(paragraph).split())
    assert last.startswith(("error:", "interrupted by")), stderr
    if last.startswith("error:"):
        assert "Fix:" in last, last
    for w in words:
        assert w in last, f"{w!r} not in {last!r}"


def day_rows(s: Settings) -> dict:
    with db.engine(s).connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT count(*) AS n, count(DISTINCT entity_id) AS keys, array_agg(DISTINCT CAST(run_id AS text)) AS runs "
                "FROM predictions WHERE job = :j AND ds = :d"
            ),
            {"j": JOB, "d": DAY},
        ).one()
    return {"rows": row.n, "keys": row.keys, "runs": sorted(row.runs or [])}


def run_record(s: Settings, run_id: str) -> dict:
    with db.engine(s).connect() as conn:
        return dict(conn.execute(sa.text("SELECT * FROM scoring_runs WHERE run_id = CAST(:r AS uuid)"), {"r": run_id}).mappings().one())


def newest_run(s: Settings) -> dict:
    with db.engine(s).connect() as conn:
        return dict(conn.execute(sa.text("SELECT * FROM scoring_runs ORDER BY started_at DESC LIMIT 1")).mappings().one())


def reap(s: Settings) -> str:
    """The next command: `nightscore runs --reap`."""
    res = runner.invoke(__import__("pipeline.cli", fromlist=["app"]).app, ["runs", "--reap"], env=cli_env(s))
    assert res.exit_code == 0, res.output
    return res.output


def assert_promises(s: Settings, holder: str) -> None:
    """The day is whole and holds exactly ``holder``'s rows; the ledger agrees; nothing is left behind."""
    day = day_rows(s)
    assert day == {"rows": CUSTOMERS, "keys": CUSTOMERS, "runs": [holder]}, day
    rec = run_record(s, holder)
    assert rec["status"] in ("published", "succeeded") and rec["published_at"] is not None, rec
    with db.engine(s).connect() as conn:
        running = conn.execute(sa.text("SELECT run_id, status, stage FROM scoring_runs WHERE status = 'running'")).all()
        # a run whose rows are not in the table never says published for this day after it
        wrong = conn.execute(
            sa.text("SELECT run_id FROM scoring_runs WHERE job = :j AND ds = :d AND published_at > :t AND run_id <> CAST(:h AS uuid)"),
            {"j": JOB, "d": DAY, "t": rec["published_at"], "h": holder},
        ).all()
    assert not running, running
    assert not staging_tables(s)
    assert not wrong, wrong
    work = s.home / "work"
    assert not work.exists() or not any(work.iterdir()), list(work.iterdir())


def staging_tables(s: Settings) -> list[str]:
    with db.engine(s).connect() as conn:
        return list(
            conn.execute(
                sa.text(
                    "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE nspname = 'nightscore_staging' AND relkind = 'r'"
                )
            ).scalars()
        )


def publish_day(s: Settings) -> str:
    """Publish DAY cleanly (the old day the faults must not lose); its run id."""
    from pipeline.run import score_partition

    return score_partition(s, JOB, DAY).run_id


@dataclass
class OwnServer:
    """A PostgreSQL server of these tests' own, which they may stop and restart."""

    server: EmbeddedServer
    url: str

    def stop_immediately(self) -> None:
        self.server.stop("immediate")

    def start(self) -> None:
        self.server.start()

    def restart(self) -> None:
        self.server.restart()


@pytest.fixture(scope="session")
def own_server(tmp_path_factory, trained_template):
    """A server of its own holding a copy of the trained template database (pg_dump / pg_restore)."""
    server = EmbeddedServer(tmp_path_factory.mktemp("own-pg") / "data")
    base = server.start()
    template_db = db.ensure_database(base, "template_copy")
    dump = tmp_path_factory.mktemp("dump") / "template.dump"
    src = db.libpq_uri(trained_template["url"])
    subprocess.run([str(bin_dir() / "pg_dump"), "-Fc", "--no-owner", "--no-privileges", "-f", str(dump), src], check=True)
    subprocess.run([str(bin_dir() / "pg_restore"), "--no-owner", "--no-privileges", "-d", db.libpq_uri(template_db), str(dump)], check=True)
    yield OwnServer(server, base)
    db.dispose_all()
    server.remove()


@pytest.fixture()
def own_settings(own_server, trained_template, tmp_path):
    """Settings on a fresh database of the tests' own server (which a test may stop), local artifacts."""
    from tests.conftest import create_database, drop_database

    url = create_database(own_server.url, template="template_copy")
    s = make_settings(tmp_path / "home", url, tmp_path / "artifacts")
    _fill_store(s, trained_template["artifacts"])
    yield s
    if not _up(own_server.url):  # a test that stopped it failed before starting it again
        own_server.start()
    drop_database(own_server.url, url)


def _up(url: str) -> bool:
    try:
        eng = sa.create_engine(make_url(url).set(drivername="postgresql+psycopg2"))
        with eng.connect():
            pass
        eng.dispose()
        return True
    except Exception:
        return False
