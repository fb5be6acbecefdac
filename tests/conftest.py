"""Shared fixtures: a real PostgreSQL (NIGHTSCORE_TEST_DATABASE_URL, or one started here with pgserver),
a template database holding demo data and a trained champion, and per-test clones of it."""

from __future__ import annotations

import os
import shutil
import uuid
from datetime import date, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from pipeline import db
from pipeline.config import PROJECT_ROOT, Settings

DAY = date(2026, 3, 15)  # the partition most tests score
CUSTOMERS = 3_000


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
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

    server = pgserver.get_server(tmp_path_factory.mktemp("pg") / "data", cleanup_mode="delete")
    yield server.get_uri()
    db.dispose_all()
    server.cleanup()


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
    db.dispose_all()
    admin = _admin(server_url)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def trained_template(pg_server, tmp_path_factory):
    """A database with migrations, demo data around DAY and a champion model; and its artifact folder."""
    from pipeline.demo import load_demo_data
    from pipeline.jobs import load_job
    from pipeline.train import train_model

    base = tmp_path_factory.mktemp("template")
    url = create_database(pg_server)
    s = make_settings(base / "home", url, base / "artifacts")
    spec = load_job(s.jobs_dir, "churn")
    days = spec.training.train_days + spec.training.holdout_days
    load_demo_data(s, DAY - timedelta(days=days), DAY + timedelta(days=3), customers=CUSTOMERS)
    result = train_model(s, spec, end=DAY - timedelta(days=1))
    assert result.promoted and result.version == 1
    db.dispose_all()  # a template database must have no open connections
    yield {"url": url, "artifacts": base / "artifacts", "model_version": result.version}
    drop_database(pg_server, url)


@pytest.fixture()
def settings(pg_server, trained_template, tmp_path) -> Settings:
    """Settings on a fresh clone of the trained template (its own database, the shared model artifacts)."""
    url = create_database(pg_server, template=make_url(trained_template["url"]).database)
    artifacts = tmp_path / "artifacts"
    shutil.copytree(trained_template["artifacts"], artifacts)
    s = make_settings(tmp_path / "home", url, artifacts)
    _rebase_model_uris(s, trained_template["artifacts"], artifacts)
    yield s
    drop_database(pg_server, url)


def _rebase_model_uris(s: Settings, old: Path, new: Path) -> None:
    eng = db.engine(s)
    with eng.begin() as conn:
        conn.execute(sa.text("UPDATE model_versions SET artifact_uri = replace(artifact_uri, :o, :n)"), {"o": str(old), "n": str(new)})


@pytest.fixture()
def empty_settings(pg_server, tmp_path) -> Settings:
    """Settings on an empty database (no migrations, no data) and an empty artifact folder."""
    url = create_database(pg_server)
    yield make_settings(tmp_path / "home", url, tmp_path / "artifacts")
    drop_database(pg_server, url)


@pytest.fixture()
def engine(settings):
    return db.engine(settings)
