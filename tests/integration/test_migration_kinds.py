"""Migration 012 (model kinds) on a database at the schema before it, holding published days: nothing lost,
the reader's view unchanged, and new days of every kind publish afterwards with the kind's range check."""

from __future__ import annotations

import uuid
from datetime import date

import psycopg2
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from pipeline import db
from tests.conftest import _admin

pytestmark = pytest.mark.integration

DAYS = [date(2026, 3, 1), date(2026, 3, 2)]
ROWS = 500


def _migrate_until(eng: sa.Engine, last: str, monkeypatch) -> None:
    every = db.migration_files()
    monkeypatch.setattr(db, "migration_files", lambda: [p for p in every if p.name[:3] <= last])
    db.migrate(eng)
    monkeypatch.setattr(db, "migration_files", lambda: every)


def _new_run(conn: sa.Connection, job: str, ds: date) -> tuple[uuid.UUID, str]:
    """A running run of (job, ds) in the ledger, and a loading table name of the form the functions accept."""
    run_id = uuid.uuid4()
    conn.execute(
        sa.text("INSERT INTO scoring_runs (run_id, job, ds, status, started_at) VALUES (:r, :j, :d, 'running', now())"),
        {"r": run_id, "j": job, "d": ds},
    )
    return run_id, f"load_{run_id.hex[:12]}_{uuid.uuid4().hex[:12]}"


def _publish_old_way(eng: sa.Engine, job: str, ds: date) -> None:
    """A day published as the pipeline did at schema 011: its three-argument loading table, rows, seal, swap."""
    with eng.begin() as conn:
        run_id, name = _new_run(conn, job, ds)
        conn.execute(sa.text("SELECT nightscore_create_loading_table(:n, :j, :d)"), {"n": name, "j": job, "d": ds})
        conn.execute(
            sa.text(
                f"INSERT INTO nightscore_staging.{name} SELECT :j, :d, g::text, (g % 100) / 100.0, "
                "CASE WHEN g % 100 >= 50 THEN 'churn' ELSE 'stay' END, 'churn_xgb', 1, :r, now() FROM generate_series(1, :n) g"
            ),
            {"j": job, "d": ds, "r": run_id, "n": ROWS},
        )
        conn.execute(sa.text("SELECT nightscore_seal_loading_table(:n)"), {"n": name})
        conn.execute(sa.text("SELECT nightscore_lock_partition(:j, :d)"), {"j": job, "d": ds})
        conn.execute(
            sa.text("SELECT nightscore_swap_partition(:n, :j, :d, :r, :rows)"), {"n": name, "j": job, "d": ds, "r": run_id, "rows": ROWS}
        )


@pytest.fixture()
def old_database(empty_settings, monkeypatch):
    eng = db.engine(empty_settings)
    _migrate_until(eng, "011", monkeypatch)
    for ds in DAYS:
        _publish_old_way(eng, "churn", ds)
    yield empty_settings, eng


@pytest.fixture()
def reader(old_database, pg_server):
    settings, _ = old_database
    name = f"ns_r_{uuid.uuid4().hex[:8]}"
    admin = _admin(pg_server)
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE ROLE {name} LOGIN PASSWORD 'pw' IN ROLE nightscore_reader"))
    yield make_url(settings.database_url).set(username=name, password="pw").render_as_string(hide_password=False)
    db.dispose_all()
    with admin.connect() as conn:
        conn.execute(sa.text(f"DROP OWNED BY {name}"))
        conn.execute(sa.text(f"DROP ROLE {name}"))
    admin.dispose()


def _read(url: str, sql: str) -> list[tuple]:
    conn = psycopg2.connect(db.libpq_uri(url))
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        conn.close()


READER_QUERY = "SELECT job, ds, entity_id, score, label, model_name, model_version FROM predictions ORDER BY ds, entity_id"
LATEST_QUERY = "SELECT job, ds, entity_id, score, label FROM predictions_latest ORDER BY entity_id"


def test_migration_keeps_published_days_and_the_readers_view(old_database, reader, monkeypatch):
    settings, eng = old_database
    before = _read(reader, READER_QUERY)
    latest_before = _read(reader, LATEST_QUERY)
    assert len(before) == ROWS * len(DAYS) and len(latest_before) == ROWS

    assert db.migrate(eng) == [
        "012_model_kinds.sql",
        "013_sources_and_keys.sql",
        "014_alert_log.sql",
        "015_side_tables.sql",
        "016_shadow.sql",
        "017_performance_estimates.sql",
    ]

    assert _read(reader, READER_QUERY) == before  # every published row, as it was
    assert _read(reader, LATEST_QUERY) == latest_before
    # the new column, readable by the reader through both objects, NULL on the old rows
    assert _read(reader, "SELECT count(*), count(scores) FROM predictions") == [(ROWS * len(DAYS), 0)]
    assert _read(reader, "SELECT count(scores) FROM predictions_latest") == [(0,)]
    # the old days keep their partitions and rows; the registry's existing versions read as binary
    with eng.connect() as conn:
        parts = conn.execute(sa.text("SELECT count(*) FROM pg_inherits WHERE inhparent = 'predictions'::regclass")).scalar()
        assert parts == len(DAYS)
        assert conn.execute(sa.text("SELECT count(*) FROM pg_proc WHERE proname = 'nightscore_create_loading_table'")).scalar() == 1


def _publish_new_way(eng: sa.Engine, job: str, ds: date, kind: str, score: float, scores: str | None) -> None:
    with eng.begin() as conn:
        run_id, name = _new_run(conn, job, ds)
        conn.execute(sa.text("SELECT nightscore_create_loading_table(:n, :j, :d, :k)"), {"n": name, "j": job, "d": ds, "k": kind})
        conn.execute(
            sa.text(f"INSERT INTO nightscore_staging.{name} VALUES (:j, :d, 'e1', :s, NULL, 'm', 1, :r, now(), CAST(:js AS jsonb))"),
            {"j": job, "d": ds, "s": score, "r": run_id, "js": scores},
        )


def test_after_the_migration_each_kind_gets_its_range_check(old_database, monkeypatch):
    _, eng = old_database
    db.migrate(eng)
    # regression: any finite value, no label, every quantile in scores
    _publish_new_way(eng, "basket", DAYS[0], "regression", 1234.5, '{"0.1": 800, "0.5": 1234.5, "0.9": 2100}')
    with pytest.raises(sa.exc.IntegrityError, match="_score"):
        _publish_new_way(eng, "basket", DAYS[1], "regression", float("inf"), None)
    # a probability above 1 is refused for the kinds that publish probabilities
    for kind in ("binary", "multiclass"):
        with pytest.raises(sa.exc.IntegrityError, match="_score"):
            _publish_new_way(eng, "plan", DAYS[0], kind, 1.5, None)
    with pytest.raises(sa.exc.InternalError, match="not a model kind"):
        _publish_new_way(eng, "plan", DAYS[0], "ranking", 0.5, None)
