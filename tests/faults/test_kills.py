"""kill -9 and SIGTERM in each stage, and random kills: the day stays whole, the ledger says what happened,
and the next command leaves nothing behind."""

from __future__ import annotations

import os
import random
import signal
import time

import pytest

from tests.faults.conftest import Run, assert_one_paragraph, assert_promises, newest_run, publish_day, reap, run_record, staging_tables

pytestmark = [pytest.mark.integration, pytest.mark.faults]

STAGES = ["extract", "validate", "score", "load", "index", "swap", "monitor"]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
@pytest.mark.parametrize("point", STAGES)
def test_killed_in_a_stage(local_settings, tmp_path, point, sig):
    s = local_settings
    old = publish_day(s)
    run = Run(s, tmp_path, failpoint=point)
    run.wait_at_point()
    run.proc.send_signal(sig)
    run.release()  # a SIGTERM'd run cleans up; a killed one is gone already
    code, _out, err = run.finish()
    new = newest_run(s)
    assert new["run_id"] != old
    published_before = point == "monitor"  # the swap had committed: the new day is the published one
    if sig == signal.SIGTERM:
        assert code == 143, err
        assert_one_paragraph(err, "interrupted by SIGTERM")
        rec = run_record(s, str(new["run_id"]))
        assert rec["status"] == ("published" if published_before else "interrupted"), rec
        assert "SIGTERM" in rec["error"] and rec["finished_at"] is not None
    else:
        assert code == -signal.SIGKILL
        # what the kill left: the run still says running, its work folder and its loading table remain
        assert run_record(s, str(new["run_id"]))["status"] == ("published" if published_before else "running")
        assert (s.home / "work" / str(new["run_id"])).is_dir()
        if point in ("load", "index"):
            assert staging_tables(s), "the kill should have left the loading table behind"
    reap(s)
    rec = run_record(s, str(new["run_id"]))
    if sig == signal.SIGKILL:
        assert rec["status"] == ("published" if published_before else "abandoned"), rec
        assert "abandoned" in rec["error"] and rec["manifest_uri"], rec
    assert_promises(s, str(new["run_id"]) if published_before else old)


def test_random_kills_then_one_reap(local_settings, tmp_path):
    """Runs killed (SIGKILL or SIGTERM) at random moments, then one `nightscore runs --reap`.

    Eight kills in `make test`; NIGHTSCORE_TEST_RANDOM_KILLS=20 for the longer check."""
    s = local_settings
    holder = publish_day(s)
    seed = int(time.time())
    rng = random.Random(seed)
    print(f"random kills, seed {seed}")
    for _ in range(int(os.environ.get("NIGHTSCORE_TEST_RANDOM_KILLS") or 8)):
        run = Run(s, tmp_path)
        time.sleep(rng.uniform(1.0, 9.0))
        run.proc.send_signal(rng.choice([signal.SIGKILL, signal.SIGTERM]))
        code, _, err = run.finish()
        if code == 0:  # it finished before the signal: its day is the published one now
            holder = str(newest_run(s)["run_id"])
        elif code == 143:
            assert_one_paragraph(err, "interrupted by SIGTERM")
        rec = newest_run(s)
        if rec["published_at"] is not None:
            holder = str(rec["run_id"])
    reap(s)
    assert_promises(s, holder)


@pytest.mark.parametrize("command", [["model", "list"], ["train", "--job", "churn", "--end", "2026-03-13", "--promote", "never"]])
def test_any_later_command_reaps(local_settings, tmp_path, command):
    """Not only `runs --reap`: the next command that touches the database marks the killed run."""
    from pipeline.cli import app
    from tests.faults.conftest import cli_env, runner

    s = local_settings
    run = Run(s, tmp_path, failpoint="score")
    run.wait_at_point()
    run.proc.send_signal(signal.SIGKILL)
    run.finish()
    killed = newest_run(s)
    assert killed["status"] == "running"
    res = runner.invoke(app, command, env=cli_env(s))
    assert res.exit_code == 0, res.output
    rec = run_record(s, str(killed["run_id"]))
    assert rec["status"] == "abandoned" and "is gone" in rec["error"], rec
    assert not (s.home / "work" / str(killed["run_id"])).exists()
