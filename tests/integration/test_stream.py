"""The streamed shard on a real PostgreSQL: rows scored and COPYed into the loading table while they are read
publish exactly what the stage-by-stage path publishes; quarantined rows that were already streamed are taken
out again; a COPY connection lost mid-stream falls back to loading as its own stage, and the day publishes."""

from __future__ import annotations

import dataclasses

import pytest
import sqlalchemy as sa

from pipeline import db, runs
from pipeline.run import score_partition
from tests.conftest import CUSTOMERS, DAY
from tests.faults.conftest import Run
from tests.integration.test_quality import COLUMNS, _job, _quarantined
from tests.integration.test_shards import _day

pytestmark = pytest.mark.integration


def _streamed(s, run_id: str) -> list[bool]:
    return [bool((r["resources"] or {}).get("streamed")) for r in runs.shards(db.engine(s), run_id)]


def test_a_streamed_day_publishes_what_the_staged_one_does(local_settings):
    s = local_settings
    staged = score_partition(dataclasses.replace(s, stream=False), "churn", DAY)
    rows = _day(s)
    streamed = score_partition(s, "churn", DAY)
    assert _streamed(s, staged.run_id) == [False] and _streamed(s, streamed.run_id) == [True]
    assert _day(s) == rows and len(rows) == CUSTOMERS
    assert streamed.counts == staged.counts
    three = score_partition(s, "churn", DAY, shard_count=3)  # each shard streams into the same loading table
    assert _streamed(s, three.run_id) == [True, True, True] and _day(s) == rows


def test_streamed_rows_of_quarantined_keys_are_taken_out_again(local_settings, tmp_path):
    select = [
        "CASE WHEN customer_id IN (7, 8) THEN NULL ELSE tenure_months END AS tenure_months" if c == "tenure_months" else c for c in COLUMNS
    ]
    s = _job(local_settings, tmp_path, select)
    state = score_partition(s, "churn", DAY, shard_count=2)
    reasons, _ = _quarantined(s, state.run_id)
    assert set(reasons) == {7, 8}
    published = _day(s)
    assert len(published) == CUSTOMERS - 2 and not {"7", "8"} & {r.entity_id for r in published}
    staged = score_partition(dataclasses.replace(s, stream=False), "churn", DAY, shard_count=2)
    assert _day(s) == published and staged.counts == state.counts


@pytest.mark.faults
def test_a_copy_lost_mid_stream_is_loaded_again_as_its_own_stage(local_settings, tmp_path):
    s = local_settings
    run = Run(s, tmp_path, failpoint="streaming", NIGHTSCORE_BATCH_ROWS="500")
    run.wait_at_point()
    with db.engine(s).connect() as conn:  # the stream's COPY connections, mid-COPY
        killed = conn.execute(
            sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() AND query ILIKE 'COPY%'"
            )
        ).scalar()
    assert killed >= 1
    run.release()
    code, out, err = run.finish()
    assert code == 0, err
    with db.engine(s).connect() as conn:
        rec = conn.execute(sa.text("SELECT run_id, status, rows_published FROM scoring_runs ORDER BY started_at DESC LIMIT 1")).one()
    assert rec.status == "succeeded" and rec.rows_published == CUSTOMERS
    assert _streamed(s, str(rec.run_id)) == [False]  # loaded again, as the load stage
    assert len(_day(s)) == CUSTOMERS
