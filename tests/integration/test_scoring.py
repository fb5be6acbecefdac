"""The scoring path end to end on a real PostgreSQL: publish, idempotency, atomicity, failures."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from pipeline import db, registry
from pipeline.errors import ModelError, ValidationFailed
from pipeline.run import score_partition
from tests.conftest import CUSTOMERS, DAY

pytestmark = pytest.mark.integration


def _rows(engine, ds=DAY):
    with engine.connect() as conn:
        return conn.execute(
            sa.text(
                "SELECT entity_id, score, label, model_name, model_version, run_id FROM predictions WHERE job='churn' AND ds=:d ORDER BY entity_id"
            ),
            {"d": ds},
        ).all()


def _run_row(engine, run_id):
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT * FROM scoring_runs WHERE run_id = CAST(:r AS uuid)"), {"r": run_id}).mappings().one()


def test_publishes_one_full_partition_with_lineage(settings, engine):
    state = score_partition(settings, "churn", DAY)
    with engine.connect() as conn:
        source = conn.execute(sa.text("SELECT count(*) FROM demo.customer_activity WHERE ds = :d"), {"d": DAY}).scalar()
    rows = _rows(engine)
    assert source == CUSTOMERS and len(rows) == source
    assert {(r.model_name, r.model_version, str(r.run_id)) for r in rows} == {("churn_xgb", 1, state.run_id)}
    assert all(0.0 <= r.score <= 1.0 and r.label == ("churn" if r.score >= 0.5 else "stay") for r in rows)
    run = _run_row(engine, state.run_id)
    assert run["status"] == "succeeded" and run["error"] is None
    assert (run["rows_extracted"], run["rows_valid"], run["rows_quarantined"], run["rows_scored"], run["rows_published"]) == (
        source,
        source,
        0,
        source,
        source,
    )
    assert run["model_sha256"] and run["manifest_uri"].endswith("manifest.json")
    assert set(run["stage_seconds"]) >= {"extract", "validate", "score", "publish", "monitor"}
    assert "score_psi" in run["drift"]


def test_three_reruns_leave_the_same_rows(settings, engine):
    contents = []
    for _ in range(3):
        score_partition(settings, "churn", DAY)
        contents.append([(r.entity_id, r.score, r.label, r.model_version) for r in _rows(engine)])
    assert len(contents[0]) == CUSTOMERS
    assert contents[0] == contents[1] == contents[2]
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM predictions")).scalar() == CUSTOMERS
        assert conn.execute(sa.text("SELECT count(*) FROM scoring_runs WHERE status='succeeded'")).scalar() == 3
        staging = conn.execute(sa.text("SELECT count(*) FROM pg_tables WHERE schemaname='nightscore_staging'")).scalar()
    assert staging == 0


def test_reader_never_sees_a_partial_or_empty_day(settings, engine):
    score_partition(settings, "churn", DAY)
    seen: list[int] = []
    stop = threading.Event()
    reader = sa.create_engine(engine.url)

    def read_loop():
        with reader.connect() as conn:
            while not stop.is_set():
                seen.append(conn.execute(sa.text("SELECT count(*) FROM predictions WHERE job='churn' AND ds=:d"), {"d": DAY}).scalar())
                conn.commit()

    t = threading.Thread(target=read_loop)
    t.start()
    try:
        for _ in range(3):
            score_partition(settings, "churn", DAY)
    finally:
        stop.set()
        t.join()
        reader.dispose()
    assert len(seen) > 20, "the reader should have polled many times during the republishes"
    assert set(seen) == {CUSTOMERS}


def test_concurrent_writers_of_one_day_leave_one_copy(settings, engine):
    errors: list[BaseException] = []

    def run():
        try:
            score_partition(settings, "churn", DAY)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    rows = _rows(engine)
    assert len(rows) == CUSTOMERS and len({r.run_id for r in rows}) == 1


def test_out_of_contract_value_fails_and_keeps_the_published_day(settings, engine):
    first = score_partition(settings, "churn", DAY)
    before = _rows(engine)
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE demo.customer_activity SET monthly_spend = 99999 WHERE ds = :d AND customer_id IN (11, 12)"), {"d": DAY}
        )
    with pytest.raises(ValidationFailed) as info:
        score_partition(settings, "churn", DAY)
    msg = str(info.value)
    assert "column 'monthly_spend': must be between 0 and 10000: 2 row(s)" in msg and "11, 12" in msg
    assert _rows(engine) == before and {str(r.run_id) for r in before} == {first.run_id}
    with engine.connect() as conn:
        failed = conn.execute(sa.text("SELECT * FROM scoring_runs WHERE status = 'failed'")).mappings().one()
    assert failed["error"].startswith("[validate] validation of job 'churn' failed")
    assert failed["validation_success"] is False
    assert failed["validation_summary"]["failed_rules"][0]["column"] == "monthly_spend"
    assert failed["rows_extracted"] == CUSTOMERS and failed["rows_published"] is None


def test_dry_run_publishes_nothing(settings, engine):
    state = score_partition(settings, "churn", DAY, dry_run=True)
    assert state.counts["scored"] == CUSTOMERS and state.counts["published"] == 0
    assert _rows(engine) == []
    assert _run_row(engine, state.run_id)["dry_run"] is True


def test_pinned_version_and_alias_resolution(settings, engine):
    from pipeline.jobs import load_job
    from pipeline.train import train_model

    spec = load_job(settings.jobs_dir, "churn")
    res = train_model(settings, spec, end=DAY - timedelta(days=2), promote="never")
    assert res.version == 2 and not res.promoted
    score_partition(settings, "churn", DAY)
    assert {r.model_version for r in _rows(engine)} == {1}  # alias still on v1
    score_partition(settings, "churn", DAY, model_version=2)
    assert {r.model_version for r in _rows(engine)} == {2}
    with pytest.raises(ModelError, match="has no version 9"):
        score_partition(settings, "churn", DAY, model_version=9)


def test_no_model_registered_fails_before_extracting(empty_settings):
    from pipeline.demo import load_demo_data

    load_demo_data(empty_settings, DAY, DAY, customers=100)
    with pytest.raises(ModelError, match=r"no model is registered as churn_xgb@champion.*nightscore train"):
        score_partition(empty_settings, "churn", DAY)
    eng = db.engine(empty_settings)
    with eng.connect() as conn:
        run = conn.execute(sa.text("SELECT status, error, rows_extracted FROM scoring_runs")).one()
    assert run.status == "failed" and "no model" in run.error and run.rows_extracted is None


def test_tampered_model_is_refused_before_publishing(settings, engine, store):
    first = score_partition(settings, "churn", DAY)
    mv = registry.resolve(engine, "churn_xgb")
    data = bytearray(store.get_bytes(store.key(mv.artifact_uri)))
    data[100] ^= 0xFF  # change bytes of the object in the store (bucket or folder)
    store.put_bytes(store.key(mv.artifact_uri), bytes(data))
    with pytest.raises(ModelError, match=r"checksum mismatch for model churn_xgb version 1: registry says sha256 \w+"):
        score_partition(settings, "churn", DAY)
    assert {str(r.run_id) for r in _rows(engine)} == {first.run_id} and len(_rows(engine)) == CUSTOMERS


def test_migrations_are_idempotent_and_recorded(settings, engine):
    assert db.migrate(engine) == []
    with engine.connect() as conn:
        names = conn.execute(sa.text("SELECT name FROM schema_migrations ORDER BY version")).scalars().all()
    assert names == [p.name for p in db.migration_files()]


def test_reader_role_can_only_select_predictions(settings, engine):
    score_partition(settings, "churn", DAY)
    with engine.connect() as conn:
        conn.execute(sa.text("SET ROLE nightscore_reader"))
        assert conn.execute(sa.text("SELECT count(*) FROM predictions_latest WHERE job='churn'")).scalar() == CUSTOMERS
        with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
            conn.execute(sa.text("SELECT count(*) FROM scoring_runs"))
        conn.rollback()
        conn.execute(sa.text("SET ROLE nightscore_reader"))
        with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
            conn.execute(sa.text("DELETE FROM predictions"))
        conn.rollback()


def test_latest_view_gives_each_entity_its_newest_day(settings, engine):
    score_partition(settings, "churn", DAY)
    score_partition(settings, "churn", DAY + timedelta(days=1))
    with engine.connect() as conn:
        days = conn.execute(sa.text("SELECT ds, count(*) FROM predictions_latest GROUP BY ds")).all()
    assert days == [(DAY + timedelta(days=1), CUSTOMERS)]


def _migrate_up_to(conn: sa.Connection, number: str) -> Path:
    """Apply the migrations before ``number``; return that migration's file."""
    for path in db.migration_files():
        if path.name.startswith(number):
            return path
        db.run_script(conn, path.read_text())
    raise AssertionError(f"no migration {number}")


def test_partitioning_migration_keeps_published_rows(empty_settings):
    """A database published before migration 006 keeps its rows, now one partition per (job, ds)."""
    with db.engine(empty_settings).begin() as conn:
        migration = _migrate_up_to(conn, "006")
        conn.execute(
            sa.text(
                "INSERT INTO predictions SELECT 'churn', DATE '2026-03-14' + (g % 2), g::text, 0.25, 'stay', 'churn_xgb', 1, "
                "gen_random_uuid(), now() FROM generate_series(1, 10) g"
            )
        )
        db.run_script(conn, migration.read_text())
        parts = (
            conn.execute(
                sa.text(
                    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'predictions'::regclass ORDER BY 1"
                )
            )
            .scalars()
            .all()
        )
        per_day = dict(conn.execute(sa.text("SELECT ds, count(*) FROM predictions GROUP BY ds")).all())
        latest = conn.execute(sa.text("SELECT count(*) FROM predictions_latest")).scalar()
    assert parts == ["churn__20260314", "churn__20260315"]
    assert sum(per_day.values()) == 10 and len(per_day) == 2
    assert latest == 10


def test_entity_collation_migration_keeps_rows_view_and_grant(empty_settings):
    """Migration 007 makes entity_id byte-ordered (COLLATE "C") on published partitions too, keeping the
    rows, the latest view and the reader's grant on it."""
    with db.engine(empty_settings).begin() as conn:
        migration = _migrate_up_to(conn, "007")
        conn.execute(
            sa.text(
                "CREATE TABLE nightscore_partitions.churn__20260314 PARTITION OF predictions "
                "FOR VALUES FROM ('churn', '2026-03-14') TO ('churn', '2026-03-15')"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO predictions SELECT 'churn', DATE '2026-03-14', g, 0.25, 'stay', 'churn_xgb', 1, gen_random_uuid(), now() "
                "FROM unnest(ARRAY['b', 'a', 'B', 'ä', 'A']) g"
            )
        )
        db.run_script(conn, migration.read_text())
        collations = dict(
            conn.execute(
                sa.text(
                    "SELECT c.relname, co.collname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
                    "JOIN pg_collation co ON co.oid = a.attcollation "
                    "WHERE a.attname = 'entity_id' AND c.relname IN ('predictions', 'predictions_latest', 'churn__20260314')"
                )
            ).all()
        )
        ordered = conn.execute(sa.text("SELECT entity_id FROM predictions ORDER BY entity_id")).scalars().all()
        conn.execute(sa.text("SET LOCAL ROLE nightscore_reader"))
        latest = conn.execute(sa.text("SELECT count(*) FROM predictions_latest")).scalar()
    assert collations == {"predictions": "C", "predictions_latest": "C", "churn__20260314": "C"}
    assert ordered == ["A", "B", "a", "b", "ä"]  # byte order
    assert latest == 5
