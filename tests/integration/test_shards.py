"""Sharded runs on a real PostgreSQL: a day split by a stable hash of the entity key, each shard extracted,
validated, scored and loaded in a worker process of its own, the day published once.

The promises: a sharded run and an unsharded run of the same day publish the same rows (entity ids, scores,
labels) and quarantine the same keys for the same reasons; the shards are disjoint and complete; a failed
shard fails the day and nothing is published; a killed worker is retried alone and its retry replaces what
it had loaded.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

import pytest
import sqlalchemy as sa

from pipeline import db, runs, shards
from pipeline.errors import ValidationFailed
from pipeline.run import score_partition
from tests.conftest import CUSTOMERS, DAY
from tests.faults.conftest import Run, assert_one_paragraph
from tests.integration.test_quality import COLUMNS, _job, _quarantined, _replace

pytestmark = pytest.mark.integration


def _day(settings, ds=DAY):
    with db.engine(settings).connect() as conn:
        return conn.execute(
            sa.text("SELECT entity_id, score, label, model_version FROM predictions WHERE job = 'churn' AND ds = :d ORDER BY entity_id"),
            {"d": ds},
        ).all()


def _source_keys(settings, ds=DAY) -> list[int]:
    with db.engine(settings).connect() as conn:
        return [r[0] for r in conn.execute(sa.text("SELECT customer_id FROM demo.customer_activity WHERE ds = :d"), {"d": ds})]


def test_python_and_postgresql_agree_on_every_keys_shard(local_settings):
    keys = _source_keys(local_settings)
    with db.engine(local_settings).connect() as conn:
        for n in (2, 3, 7):
            in_pg = dict(
                conn.execute(
                    sa.text(f"SELECT customer_id, {shards.shard_expr('CAST(customer_id AS text)', n)} FROM demo.customer_activity WHERE ds = :d"),
                    {"d": DAY},
                ).all()
            )
            assert in_pg == {k: shards.shard_of(k, n) for k in keys}
            assert conn.execute(sa.text("SELECT nightscore_shard_of('12345', :n)"), {"n": n}).scalar() == shards.shard_of(12345, n)
    spread = Counter(shards.shard_of(k, 4) for k in keys)
    assert set(spread) == {0, 1, 2, 3} and min(spread.values()) > len(keys) / 8  # every shard gets a fair share


def test_sharded_run_publishes_the_same_day_as_an_unsharded_one(settings):
    one = score_partition(settings, "churn", DAY, shard_count=1)
    unsharded = _day(settings)
    assert len(unsharded) == CUSTOMERS and one.shards == 1
    three = score_partition(settings, "churn", DAY, shard_count=3, workers=2)
    assert three.shards == 3 and three.counts["published"] == CUSTOMERS
    assert _day(settings) == unsharded  # entity ids, scores, labels, model: the same rows
    parts = runs.shards(db.engine(settings), three.run_id)
    assert [r["shard"] for r in parts] == [0, 1, 2] and {r["status"] for r in parts} == {"loaded"}
    # disjoint and complete: each shard read exactly the keys that hash to it
    expected = Counter(shards.shard_of(k, 3) for k in _source_keys(settings))
    assert {r["shard"]: r["rows_extracted"] for r in parts} == dict(expected)
    assert sum(r["rows_loaded"] for r in parts) == three.counts["published"] == CUSTOMERS
    run = runs.get(db.engine(settings), three.run_id)
    assert run["status"] == "succeeded" and run["shards"] == 3 and run["rows_extracted"] == run["rows_published"] == CUSTOMERS
    assert len({r["owner_pid"] for r in parts}) >= 2 and os.getpid() not in {r["owner_pid"] for r in parts}  # worker processes
    with db.engine(settings).connect() as conn:  # the loading table became the partition: nothing is left behind
        assert conn.execute(sa.text("SELECT count(*) FROM pg_tables WHERE schemaname = 'nightscore_staging'")).scalar() == 0


def test_sharded_and_unsharded_quarantine_the_same_keys(local_settings, tmp_path):
    bad = {
        11: ["tenure_months: must not be null"],
        12: ["tenure_months: must not be null"],
        500: ["discount_pct: must be between 0 and 100"],
    }
    select = [
        "CASE WHEN customer_id IN (11, 12) THEN NULL ELSE tenure_months END AS tenure_months"
        if c == "tenure_months"
        else "CASE WHEN customer_id = 500 THEN 250.0 ELSE discount_pct END AS discount_pct"
        if c == "discount_pct"
        else c
        for c in COLUMNS
    ]
    s = _job(local_settings, tmp_path, select)
    one = score_partition(s, "churn", DAY)
    reasons_one, _ = _quarantined(s, one.run_id)
    rows_one = _day(s)
    four = score_partition(s, "churn", DAY, shard_count=4)
    reasons_four, values = _quarantined(s, four.run_id)
    assert reasons_one == reasons_four == bad
    assert all(v[0]["customer_id"] == k for k, v in values.items())
    assert _day(s) == rows_one and len(rows_one) == CUSTOMERS - len(bad)
    assert four.counts["quarantined"] == one.counts["quarantined"] == len(bad)
    parts = runs.shards(db.engine(s), four.run_id)
    assert sum(r["rows_quarantined"] for r in parts) == len(bad)
    assert all(r["rows_extracted"] == r["rows_valid"] + r["rows_quarantined"] for r in parts)


def test_the_days_bad_row_share_is_judged_over_all_shards(local_settings, tmp_path):
    """Each shard alone may hold more bad rows than max_bad_ratio allows; the day as a whole decides."""
    keys = _source_keys(local_settings)
    # 2% of the day, all in shard 0 of 2: 4% of that shard, within a 3% limit for the day
    bad = [k for k in keys if shards.shard_of(k, 2) == 0][: CUSTOMERS // 50]
    s = _job(
        local_settings,
        tmp_path,
        _replace("tenure_months", f"CASE WHEN customer_id IN ({', '.join(map(str, bad))}) THEN NULL ELSE tenure_months END"),
        max_bad_ratio=0.03,
    )
    state = score_partition(s, "churn", DAY, shard_count=2)
    assert state.counts["quarantined"] == len(bad) and state.counts["published"] == CUSTOMERS - len(bad)
    before = _day(s)
    s2 = _job(
        local_settings,
        tmp_path,
        _replace("tenure_months", f"CASE WHEN customer_id IN ({', '.join(map(str, bad))}) THEN NULL ELSE tenure_months END"),
        max_bad_ratio=0.01,
    )
    with pytest.raises(ValidationFailed, match=r"bad rows of .* over its 2 shards exceed max_bad_ratio 1.00%"):
        score_partition(s2, "churn", DAY, shard_count=2)
    assert _day(s2) == before


def test_a_failed_shard_fails_the_day_and_publishes_nothing(local_settings, tmp_path):
    score_partition(local_settings, "churn", DAY)
    before = _day(local_settings)
    s = _job(local_settings, tmp_path, _replace("plan", "CASE WHEN customer_id = 7 THEN 'platinum' ELSE plan END"), policy="fail")
    with pytest.raises(ValidationFailed) as err:
        score_partition(s, "churn", DAY, shard_count=3)
    shard = shards.shard_of(7, 3)
    assert f"shard {shard} of 3" in str(err.value) and "plan" in str(err.value)
    assert _day(s) == before
    with db.engine(s).connect() as conn:
        run = conn.execute(sa.text("SELECT * FROM scoring_runs ORDER BY started_at DESC LIMIT 1")).mappings().one()
        assert conn.execute(sa.text("SELECT count(*) FROM pg_tables WHERE schemaname = 'nightscore_staging'")).scalar() == 0
    assert run["status"] == "failed" and run["error"].startswith(f"[shard {shard}/3 validate]")
    states = {r["shard"]: r["status"] for r in runs.shards(db.engine(s), str(run["run_id"]))}
    assert states[shard] == "failed"


def test_an_empty_shard_is_fine_but_an_empty_day_is_not(local_settings, tmp_path):
    s = _job(local_settings, tmp_path, COLUMNS, where="AND customer_id IN (1, 2, 3)")
    state = score_partition(s, "churn", DAY, shard_count=16)  # most shards get no row at all
    assert state.counts["published"] == 3 and sum(1 for r in runs.shards(db.engine(s), state.run_id) if r["rows_extracted"] == 0) >= 10
    s = _job(local_settings, tmp_path, COLUMNS, where="AND false")
    with pytest.raises(ValidationFailed, match=r"the source has no rows for churn .* over its 4 shards"):
        score_partition(s, "churn", DAY, shard_count=4)


def _sharded_cli_run(settings, tmp_path, failpoint: str, shards_and_workers: int) -> Run:
    """`nightscore score` for DAY in a process of its own, in N shards and N workers, paused at ``failpoint``."""
    n = str(shards_and_workers)
    return Run(
        settings, tmp_path, failpoint=failpoint, args=["score", "--job", "churn", "--ds", DAY.isoformat(), "--shards", n, "--workers", n]
    )


def test_a_killed_worker_is_retried_alone_and_replaces_what_it_loaded(local_settings, tmp_path):
    """SIGKILL one shard's worker after its rows are in the loading table: the parent starts that shard
    again (attempt 2), which deletes its earlier rows before loading; the day is published whole, once."""
    score_partition(local_settings, "churn", DAY)
    unsharded = _day(local_settings)
    run = _sharded_cli_run(local_settings, tmp_path, "loaded", 3)
    run.wait_at_point()
    while not run.marker.read_text().strip().isdigit():  # the marker is being written
        pass
    victim = int(run.marker.read_text())  # the first shard to get there
    os.kill(victim, signal.SIGKILL)
    run.release()
    code, out, err = run.finish()
    assert code == 0, err
    assert _day(local_settings) == unsharded  # no duplicate, no missing key
    with db.engine(local_settings).connect() as conn:
        rec = conn.execute(sa.text("SELECT * FROM scoring_runs ORDER BY started_at DESC LIMIT 1")).mappings().one()
    parts = runs.shards(db.engine(local_settings), str(rec["run_id"]))
    assert rec["status"] == "succeeded"
    assert sorted(r["attempt"] for r in parts) == [1, 1, 2]  # only the killed shard ran again
    assert victim not in {r["owner_pid"] for r in parts}
    assert "trying it again alone" in err


def test_sigterm_stops_every_worker_and_leaves_the_day(local_settings, tmp_path):
    score_partition(local_settings, "churn", DAY)
    before = _day(local_settings)
    run = _sharded_cli_run(local_settings, tmp_path, "score", 2)
    run.wait_at_point()
    run.proc.send_signal(signal.SIGTERM)
    run.release()
    code, _, err = run.finish()
    assert code == 143
    assert_one_paragraph(err)
    assert _day(local_settings) == before
    with db.engine(local_settings).connect() as conn:
        rec = conn.execute(sa.text("SELECT * FROM scoring_runs ORDER BY started_at DESC LIMIT 1")).mappings().one()
        assert conn.execute(sa.text("SELECT count(*) FROM pg_tables WHERE schemaname = 'nightscore_staging'")).scalar() == 0
    assert rec["status"] == "interrupted"
    assert {r["status"] for r in runs.shards(db.engine(local_settings), str(rec["run_id"]))} <= {"interrupted", "loaded"}
    # no worker survives its parent
    for r in runs.shards(db.engine(local_settings), str(rec["run_id"])):
        if r["owner_pid"]:
            with pytest.raises(ProcessLookupError):
                os.kill(r["owner_pid"], 0)


def test_a_shard_retried_as_airflow_retries_it_revives_the_run(local_settings):
    """Airflow runs each shard as a task of its own: a failed shard marks the run failed, the reaper keeps its
    loading table for the retry, and the retry (attempt 2) takes the run back up; a shard run twice replaces
    its own rows. The day is then published whole."""
    from pipeline import run
    from pipeline.errors import SourceError
    from pipeline.reap import reap

    s = local_settings
    score_partition(s, "churn", DAY)
    expected = _day(s)
    eng = db.engine(s)
    runs.set_task("score_churn.shard manual__retry", 1)
    try:
        state = run.begin(s, "churn", DAY, shard_count=3, airflow_run_id="manual__retry")
        run.shard_step(s, state, 0)
        with eng.begin() as conn:  # the source goes away for a moment
            conn.execute(sa.text("ALTER TABLE demo.customer_activity RENAME TO customer_activity_away"))
        try:
            with pytest.raises(SourceError, match="customer_activity"):
                run.shard_step(s, state, 1)
        finally:
            with eng.begin() as conn:
                conn.execute(sa.text("ALTER TABLE demo.customer_activity_away RENAME TO customer_activity"))
        rec = runs.get(eng, state.run_id)
        assert rec["status"] == "failed" and rec["error"].startswith("[shard 1/3 extract]")
        reap(s)  # another run's reaper: a failed Airflow run may still be retried, its loading table stays
        with eng.connect() as conn:
            assert conn.execute(sa.text("SELECT to_regclass(:t)"), {"t": f"nightscore_staging.{state.loading_table}"}).scalar()
        assert run.shard_step(s, state, 1).attempt == 2
        assert runs.get(eng, state.run_id)["status"] == "running"  # revived: no other shard has failed
        run.shard_step(s, state, 2)
        assert run.shard_step(s, state, 0).attempt == 2  # shard 0 again: its earlier rows are replaced, not doubled
        state = run.finish_step(s, run.publish_step(s, state))
    finally:
        runs.set_task(None, None)
    assert runs.get(eng, state.run_id)["status"] == "succeeded"
    assert _day(s) == expected
    assert [r["attempt"] for r in runs.shards(eng, state.run_id)] == [2, 2, 1]
