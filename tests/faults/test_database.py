"""The database misbehaves: the server stopped immediately mid-load and inside the swap, writer backends
terminated, restarted between the Airflow steps; a long reader during a republish; two writers of one day."""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

import psycopg2
import pytest
import sqlalchemy as sa

from pipeline import db, runs
from pipeline.errors import PublishTimeout
from pipeline.run import score_partition
from tests.conftest import CUSTOMERS, DAY
from tests.faults.conftest import (
    JOB,
    Run,
    assert_one_paragraph,
    assert_promises,
    day_rows,
    newest_run,
    publish_day,
    reap,
    run_record,
)

pytestmark = [pytest.mark.integration, pytest.mark.faults]


@pytest.mark.parametrize("point", ["load", "swap"])
def test_server_stopped_immediately(own_server, own_settings, tmp_path, point):
    s = own_settings
    old = publish_day(s)
    run = Run(s, tmp_path, failpoint=point)
    run.wait_at_point()
    own_server.stop_immediately()
    run.release()
    code, _, err = run.finish()
    assert code == 1
    assert_one_paragraph(err, "PostgreSQL")
    own_server.start()
    db.dispose_all()
    assert day_rows(s)["runs"] == [old]  # the old day survived the crash
    reap(s)
    rec = newest_run(s)
    assert rec["status"] in ("failed", "abandoned") and rec["error"], rec
    assert_promises(s, old)


@pytest.mark.parametrize("point", ["index", "swap"])
def test_writer_backends_terminated(local_settings, tmp_path, point):
    s = local_settings
    old = publish_day(s)
    run = Run(s, tmp_path, failpoint=point)
    run.wait_at_point()
    with db.engine(s).connect() as conn:
        killed = conn.execute(
            sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar()
    assert killed >= 1
    run.release()
    code, _, err = run.finish()
    rec = newest_run(s)
    reap(s)
    if point == "index":  # only idle pooled connections died: they are replaced, and the run goes on
        assert code == 0, err
        assert_promises(s, str(rec["run_id"]))
        return
    assert code == 1  # the swap's own transaction died: it rolled back
    assert_one_paragraph(err, "PostgreSQL")
    assert rec["status"] == "failed" and "PostgreSQL" in rec["error"], rec  # recorded on a fresh connection
    assert_promises(s, old)


def test_server_restarted_between_airflow_steps(own_server, own_settings):
    """The DAG's tasks are separate processes; the server restarting between two of them costs nothing."""
    from pipeline import run

    s = own_settings
    runs.set_task("score_churn.begin manual__test", 1)
    try:
        state = run.begin(s, JOB, DAY, shard_count=2).to_dict()
        assert run_record(s, state["run_id"])["owner_pid"] is None  # handed over: no process holds it
        own_server.restart()
        for index in (0, 1):
            runs.set_task(f"score_churn.shard[{index}] manual__test", 1)
            run.shard_step(s, run.RunState.from_dict(state), index)
            own_server.restart()
        runs.set_task("score_churn.publish manual__test", 1)
        state = run.publish_step(s, run.RunState.from_dict(state)).to_dict()
        own_server.restart()
        runs.set_task("score_churn.monitor manual__test", 2)
        state = run.finish_step(s, run.RunState.from_dict(state)).to_dict()
    finally:
        runs.set_task(None, None)
    rec = run_record(s, state["run_id"])
    assert rec["status"] == "succeeded" and rec["owner_task"] == "score_churn.monitor manual__test" and rec["owner_try"] == 2
    assert_promises(s, state["run_id"])


def _reader(s, day):
    conn = psycopg2.connect(db.libpq_uri(s.database_url))
    cur = conn.cursor()
    cur.execute("SELECT count(*) FROM predictions WHERE job = %s AND ds = %s", (JOB, day))
    cur.fetchone()
    return conn  # its transaction stays open, holding ACCESS SHARE on predictions and the day


def test_long_reader_delays_other_readers_at_most_the_lock_timeout(local_settings, caplog):
    s = local_settings.with_overrides(publish_lock_timeout_ms=1000)
    other = DAY + timedelta(days=1)
    score_partition(s, JOB, other)
    old = publish_day(s)
    blocker = _reader(s, DAY)
    blocker_pid = blocker.get_backend_pid()
    waits: list[float] = []
    done = threading.Event()

    def other_readers():
        conn = psycopg2.connect(db.libpq_uri(s.database_url))
        conn.autocommit = True
        cur = conn.cursor()
        while not done.is_set():
            t0 = time.perf_counter()
            cur.execute("SELECT count(*) FROM predictions WHERE job = %s AND ds = %s", (JOB, other))
            cur.execute("SELECT count(*) FROM predictions_latest WHERE job = %s", (JOB,))
            waits.append(time.perf_counter() - t0)
            time.sleep(0.02)
        conn.close()

    readers = threading.Thread(target=other_readers)
    readers.start()
    threading.Timer(6.0, blocker.rollback).start()  # the long reader ends after 6 s
    result: dict = {}
    publisher = threading.Thread(target=lambda: result.update(state=score_partition(s, JOB, DAY)))
    with caplog.at_level(logging.WARNING, logger="pipeline.publish"):
        publisher.start()
        publisher.join(120)
    done.set()
    readers.join()
    blocker.close()
    assert "state" in result, "the publish did not complete after the reader ended"
    print(f"other readers: {len(waits)} queries, longest wait {max(waits):.3f} s")
    # one try's lock wait and swap share the 1 s (0.1 s: this client's two round trips and the commit)
    assert max(waits) < 1.0 + 0.1, f"another reader waited {max(waits):.2f} s (lock timeout 1 s)"
    assert len(waits) > 50
    assert f"pid {blocker_pid}" in caplog.text and "transaction open" in caplog.text  # each wait names the blocker
    assert result["state"].run_id != old
    assert_promises(s, result["state"].run_id)


def test_publish_deadline_names_the_blocker_and_keeps_the_day(local_settings):
    s = local_settings.with_overrides(publish_lock_timeout_ms=300, publish_deadline_s=3)
    old = publish_day(s)
    blocker = _reader(s, DAY)
    pid = blocker.get_backend_pid()
    try:
        with pytest.raises(PublishTimeout) as info:
            score_partition(s, JOB, DAY)
    finally:
        blocker.close()
    message = str(info.value)
    assert f"pid {pid} (user " in message
    assert "could not take its locks within 3 s" in message and "idle in transaction" in message and "Fix:" in message
    rec = newest_run(s)
    assert rec["status"] == "failed" and "could not take its locks" in rec["error"]
    reap(s)
    assert_promises(s, old)


SLOW_SWAP = """
CREATE OR REPLACE FUNCTION public.test_slow_publish() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_sleep(0.5); RETURN NEW; END $$;
CREATE TRIGGER test_slow_publish BEFORE UPDATE ON public.scoring_runs
    FOR EACH ROW WHEN (NEW.status = 'published') EXECUTE FUNCTION public.test_slow_publish();
"""


def test_a_swap_past_its_share_of_the_timeout_is_rolled_back_and_the_day_kept(local_settings, caplog):
    # the swap's last step (the ledger row marked published) made to take 0.5 s: past the 200 ms a try has,
    # so every try is cancelled mid-swap, rolled back (its readers let through) and tried again until the deadline
    s = local_settings.with_overrides(publish_lock_timeout_ms=200, publish_deadline_s=2)
    old = publish_day(s)
    admin = db.engine(s)
    with admin.begin() as conn:
        conn.exec_driver_sql(SLOW_SWAP)
    try:
        with caplog.at_level(logging.WARNING, logger="pipeline.publish"), pytest.raises(PublishTimeout) as info:
            score_partition(s, JOB, DAY)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql("DROP TRIGGER test_slow_publish ON public.scoring_runs; DROP FUNCTION public.test_slow_publish()")
    assert "locks taken but the swap not done within 200 ms" in caplog.text
    assert "could not take its locks within 2 s" in str(info.value)
    assert newest_run(s)["status"] == "failed"
    reap(s)
    assert_promises(s, old)


def test_two_writers_of_one_day(local_settings, tmp_path):
    s = local_settings
    publish_day(s)
    first, second = Run(s, tmp_path), Run(s, tmp_path)
    results = [first.finish(), second.finish()]
    assert [r[0] for r in results] == [0, 0], results
    day = day_rows(s)
    assert day["rows"] == CUSTOMERS and len(day["runs"]) == 1
    with db.engine(s).connect() as conn:
        statuses = conn.execute(sa.text("SELECT status FROM scoring_runs ORDER BY started_at")).scalars().all()
    assert statuses == ["succeeded"] * 3
    reap(s)
    assert_promises(s, day["runs"][0])
