"""Explanations end to end against a real PostgreSQL: a day's reasons are published with its predictions in
the same swap, add up to each row's published score, read by the reader role through the job's view, are the
same when the day is published again, and a reader never sees reasons of another run than the predictions."""

from __future__ import annotations

import dataclasses
import json
import math
import threading

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from pipeline import db
from pipeline.cli import app
from pipeline.run import score_partition
from tests.conftest import CUSTOMERS, DAY
from tests.integration.test_cli import _env
from tests.integration.test_sources import _jobs

pytestmark = pytest.mark.integration
runner = CliRunner()


def _explained(s, tmp_path, **explain):
    jobs = _jobs(tmp_path, churn_why={"from": "churn", "explain": {"top": 3, **explain}})
    return dataclasses.replace(s, jobs_dir=jobs)


def _reasons(s, job="churn_why"):
    with db.engine(s).connect() as conn:
        return {
            r.entity_id: r
            for r in conn.execute(
                sa.text(
                    "SELECT r.entity_id, r.reasons, r.base_value, r.rest, r.run_id, p.score, p.run_id AS p_run "
                    "FROM prediction_reasons r JOIN predictions p USING (job, ds, entity_id) WHERE r.job = :j AND r.ds = :d"
                ),
                {"j": job, "d": DAY},
            )
        }


def test_reasons_are_published_with_the_day_and_add_up_to_each_score(local_settings, tmp_path):
    s = _explained(local_settings, tmp_path)
    state = score_partition(s, "churn_why", DAY, shard_count=2)
    rows = _reasons(s)
    assert len(rows) == CUSTOMERS == state.counts["published"]
    for r in rows.values():
        assert str(r.run_id) == str(r.p_run) == state.run_id
        reasons = r.reasons
        assert len(reasons) == 3 and len({x["feature"] for x in reasons}) == 3
        sizes = [abs(x["contribution"]) for x in reasons]
        assert sizes == sorted(sizes, reverse=True)
        margin = r.base_value + r.rest + sum(x["contribution"] for x in reasons)
        assert 1 / (1 + math.exp(-margin)) == pytest.approx(r.score, abs=1e-5)  # binary: the score is the margin's sigmoid
    # the reader role sees them through the job's typed view, beside the row they explain
    with db.engine(s).begin() as conn:
        conn.execute(sa.text("SET LOCAL ROLE nightscore_reader"))
        got = conn.execute(
            sa.text(
                "SELECT customer_id, score, reasons, reasons_base_value FROM predictions_churn_why WHERE ds = :d ORDER BY customer_id LIMIT 5"
            ),
            {"d": DAY},
        ).all()
        assert len(got) == 5 and all(g.reasons and len(g.reasons) == 3 for g in got)
        with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
            conn.execute(sa.text("SELECT count(*) FROM shadow_predictions"))
    # the run report shows what drives the scores beside the training holdout
    from pipeline.storage import open_store

    html = open_store(s).get_bytes(open_store(s).key(state.report_uri)).decode()
    assert "What drives the scores" in html and "training share" in html
    assert state.explain and state.explain["rows"] == CUSTOMERS


def test_a_republished_day_gives_the_same_reasons_and_a_reader_never_sees_a_mix(local_settings, tmp_path):
    s = _explained(local_settings, tmp_path)
    first = score_partition(s, "churn_why", DAY)
    before = _reasons(s)
    stop = threading.Event()
    seen: list[tuple[int, int, int]] = []
    errors: list[BaseException] = []

    def read() -> None:  # what an application sees while the day is published again and again
        eng = sa.create_engine(s.database_url)
        try:
            while not stop.is_set():
                with eng.connect() as conn:
                    seen.append(
                        tuple(
                            conn.execute(
                                sa.text(
                                    "SELECT count(*), count(r.entity_id), count(*) FILTER (WHERE r.run_id IS DISTINCT FROM p.run_id) "
                                    "FROM predictions p LEFT JOIN prediction_reasons r USING (job, ds, entity_id) WHERE p.job = 'churn_why' AND p.ds = :d"
                                ),
                                {"d": DAY},
                            ).one()
                        )
                    )
        except BaseException as exc:
            errors.append(exc)
        finally:
            eng.dispose()

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for _ in range(2):
            again = score_partition(s, "churn_why", DAY)
    finally:
        stop.set()
        reader.join()
    assert not errors, errors
    assert seen and all(row == (CUSTOMERS, CUSTOMERS, 0) for row in seen), {row for row in seen}
    after = _reasons(s)
    assert again.run_id != first.run_id and set(after) == set(before)
    for key, r in after.items():
        assert r.reasons == before[key].reasons and r.base_value == before[key].base_value
        assert str(r.run_id) == again.run_id


def test_max_rows_keeps_the_highest_scores_and_a_day_without_explain_drops_its_reasons(local_settings, tmp_path):
    s = _explained(local_settings, tmp_path, max_rows=40)
    score_partition(s, "churn_why", DAY, shard_count=3)
    rows = _reasons(s)
    assert len(rows) == 40
    with db.engine(s).connect() as conn:
        top = conn.execute(
            sa.text("SELECT entity_id FROM predictions WHERE job = 'churn_why' AND ds = :d ORDER BY score DESC, entity_id LIMIT 40"),
            {"d": DAY},
        ).scalars()
        assert set(top) == set(rows)
    plain = dataclasses.replace(s, jobs_dir=_jobs(tmp_path / "plain", churn_why={"from": "churn", "explain": None}))
    score_partition(plain, "churn_why", DAY)
    assert _reasons(plain) == {}  # the day's reasons went with the run they belonged to


def test_explain_command_prints_one_rows_reasons_and_says_what_is_missing(local_settings, tmp_path):
    s = local_settings
    s = dataclasses.replace(
        s,
        jobs_dir=_jobs(
            tmp_path / "both", churn_why={"from": "churn", "explain": {"top": 3}}, churn_plain={"from": "churn", "explain": None}
        ),
    )
    score_partition(s, "churn_why", DAY)
    score_partition(s, "churn_plain", DAY)
    key = next(iter(_reasons(s)))
    res = runner.invoke(app, ["explain", "--job", "churn_why", "--ds", DAY.isoformat(), "--entity", key], env=_env(s))
    assert res.exit_code == 0, res.output
    assert "= margin" in res.output and "(base value)" in res.output
    res = runner.invoke(
        app, ["explain", "--job", "churn_why", "--ds", DAY.isoformat(), "--entity", f"customer_id={key}", "--json"], env=_env(s)
    )
    assert res.exit_code == 0, res.output
    got = json.loads(res.output)
    assert 1 / (1 + math.exp(-got["margin"])) == pytest.approx(got["score"], abs=1e-5) and len(got["reasons"]) == 3
    res = runner.invoke(app, ["explain", "--job", "churn_plain", "--ds", DAY.isoformat(), "--entity", key], env=_env(s))
    assert res.exit_code == 1 and "no explain section" in res.output, res.output
    res = runner.invoke(app, ["explain", "--job", "churn_why", "--ds", DAY.isoformat(), "--entity", "999999999"], env=_env(s))
    assert res.exit_code == 1 and "no published row has the key customer_id=999999999" in " ".join(res.output.split()), res.output
