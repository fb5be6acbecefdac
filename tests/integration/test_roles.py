"""Least privilege with real login roles: a login granted only nightscore_writer runs the pipeline and cannot
rewrite the registry; one granted only nightscore_reader reads the application objects and nothing else."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import psycopg2
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from pipeline import db
from pipeline.cli import app
from tests.conftest import CUSTOMERS, DAY, _admin
from tests.integration.test_cli import _env

pytestmark = pytest.mark.integration
runner = CliRunner()


@pytest.fixture()
def logins(local_settings, pg_server):
    """Two fresh login roles, one granted nightscore_writer, one nightscore_reader; their database URLs."""
    suffix = uuid.uuid4().hex[:8]
    names = {"writer": f"ns_w_{suffix}", "reader": f"ns_r_{suffix}"}
    admin = _admin(pg_server)
    with admin.connect() as conn:
        for kind, name in names.items():
            conn.execute(sa.text(f"CREATE ROLE {name} LOGIN PASSWORD 'pw-{suffix}' IN ROLE nightscore_{kind}"))
    base = make_url(local_settings.database_url)
    yield {k: base.set(username=n, password=f"pw-{suffix}").render_as_string(hide_password=False) for k, n in names.items()}
    db.dispose_all()
    own = sa.create_engine(base.set(drivername="postgresql+psycopg2"), isolation_level="AUTOCOMMIT")
    with own.connect() as conn:
        for name in names.values():
            conn.execute(sa.text(f"DROP OWNED BY {name}"))
    own.dispose()
    with admin.connect() as conn:
        for name in names.values():
            conn.execute(sa.text(f"DROP ROLE {name}"))
    admin.dispose()


def _denied(url: str, statement: str) -> str:
    conn = psycopg2.connect(db.libpq_uri(url))
    try:
        with pytest.raises(psycopg2.errors.InsufficientPrivilege) as info, conn.cursor() as cur:
            cur.execute(statement)
        return str(info.value)
    finally:
        conn.close()


def test_writer_runs_the_pipeline_and_cannot_rewrite_the_registry(local_settings, logins):
    s = local_settings.with_overrides(database_url=logins["writer"])
    env = _env(s)
    for args in (
        ["score", "--job", "churn", "--ds", DAY.isoformat()],
        ["score", "--job", "churn", "--ds", DAY.isoformat()],  # a republish: the swap as the writer
        ["train", "--job", "churn", "--end", (DAY - timedelta(days=2)).isoformat(), "--promote", "never"],
        ["model", "promote", "churn_xgb", "2", "--reason", "writer test"],
        ["model", "rollback", "churn_xgb"],
        ["backfill", "--job", "churn", "--start", DAY.isoformat(), "--end", DAY.isoformat()],
        ["runs", "--reap"],
        ["runs"],
        ["model", "list"],
        ["evaluate", "--job", "churn", "--ds", DAY.isoformat()],
        ["report", "--job", "churn", "--days", "3", "--end", DAY.isoformat(), "--out", str(s.home / "job.html")],
        ["metrics", "--job", "churn"],
    ):
        res = runner.invoke(app, args, env=env)
        assert res.exit_code == 0, f"{args}: {res.output}"
    with db.engine(s).connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM predictions WHERE ds = :d"), {"d": DAY}).scalar() == CUSTOMERS
        assert conn.execute(sa.text("SELECT count(*) FROM scoring_runs WHERE status = 'succeeded'")).scalar() == 3
        assert conn.execute(sa.text("SELECT count(*) FROM evaluations WHERE ds = :d"), {"d": DAY}).scalar() == 1
    # the writer's runs drew their reports and wrote their metrics (both only warn when they cannot)
    assert len(list(Path(s.artifact_uri).rglob("report.html"))) == 3
    assert (s.home / "job.html").exists() and (s.home / "metrics" / "nightscore_churn.prom").exists()
    w = logins["writer"]
    assert "permission denied" in _denied(w, "UPDATE model_versions SET sha256 = 'x'")
    assert "permission denied" in _denied(w, "DELETE FROM model_versions")
    assert "permission denied" in _denied(w, "DELETE FROM model_alias_history")
    assert "permission denied" in _denied(w, "UPDATE model_alias_history SET reason = 'x'")
    assert "permission denied" in _denied(w, "DELETE FROM predictions")
    assert "must be owner" in _denied(w, "DROP TABLE predictions")


def test_reader_reads_the_application_objects_only(local_settings, logins):
    from pipeline.run import score_partition

    score_partition(local_settings, "churn", DAY)
    r = logins["reader"]
    conn = psycopg2.connect(db.libpq_uri(r))
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM predictions WHERE ds = %s", (DAY,))
        assert cur.fetchone()[0] == CUSTOMERS
        cur.execute("SELECT count(*) FROM predictions_latest")
        assert cur.fetchone()[0] == CUSTOMERS
    conn.close()
    for statement in (
        "SELECT * FROM scoring_runs",
        "SELECT * FROM model_versions",
        "SELECT * FROM quarantined_rows",
        "SELECT * FROM nightscore_partitions.churn__20260315",
        # the lock that serializes writers of a day: out of the reader's reach
        "SELECT * FROM publish_locks FOR UPDATE",
        "SELECT nightscore_lock_partition('churn', '2026-03-15')",
        "SELECT nightscore_create_loading_table('load_000000000000_000000000000', 'churn', '2026-03-15', 'binary')",
    ):
        assert "permission denied" in _denied(r, statement), statement


def test_writer_login_without_migrations_gets_a_clear_error(empty_settings, pg_server):
    """A database nobody ran `nightscore init` on: the writer is told to have the owner run it."""
    suffix = uuid.uuid4().hex[:8]
    name = f"ns_w_{suffix}"
    admin = _admin(pg_server)
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE ROLE {name} LOGIN IN ROLE nightscore_writer"))
    try:
        url = make_url(empty_settings.database_url).set(username=name).render_as_string(hide_password=False)
        res = runner.invoke(app, ["runs"], env=_env(empty_settings.with_overrides(database_url=url)))
        assert res.exit_code == 1
        assert "migration(s) are not applied" in res.output and "nightscore init" in res.output and "Traceback" not in res.output
    finally:
        db.dispose_all()
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP ROLE {name}"))
        admin.dispose()
