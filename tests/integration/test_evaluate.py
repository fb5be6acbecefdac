"""Delayed-label evaluation on a real PostgreSQL: a published day joined with its outcomes, recorded in
``evaluations`` and checked against an AUC we compute ourselves from the tables; matured days found once;
bad outcome queries refused with the file and the fix; a day whose outcomes turned round alerts."""

from __future__ import annotations

import re
import shutil
from datetime import date, timedelta

import numpy as np
import pytest
import sqlalchemy as sa

from pipeline import db
from pipeline.errors import NightscoreError
from pipeline.evaluate import alert_extra, evaluate_day, evaluate_matured, matured_days
from pipeline.jobs import load_job
from pipeline.run import score_partition
from tests.conftest import DAY, flip_outcomes

pytestmark = pytest.mark.integration
TODAY = DAY + timedelta(days=60)  # every test day's outcomes have matured (the demo spec: 30 days)


def _auc_by_pairs(y: np.ndarray, p: np.ndarray) -> float:
    """The AUC from its definition: the share of (positive, negative) pairs ranked right, ties counting half."""
    pos, neg = p[y == 1], p[y == 0]
    right = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(right / (len(pos) * len(neg)))


def _joined(settings, day):
    with db.engine(settings).connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT p.score, a.churned FROM predictions p JOIN demo.customer_activity a"
                " ON a.ds = p.ds AND a.customer_id::text = p.entity_id WHERE p.job = 'churn' AND p.ds = :d"
            ),
            {"d": day},
        ).all()
    return np.array([r.churned for r in rows], dtype=np.int8), np.array([r.score for r in rows])


def _evaluations(settings):
    with db.engine(settings).connect() as conn:
        return [dict(r) for r in conn.execute(sa.text("SELECT * FROM evaluations ORDER BY ds")).mappings()]


def test_a_published_day_gets_its_auc_recorded_as_computed_from_the_tables(local_settings):
    state = score_partition(local_settings, "churn", DAY)
    spec = load_job(local_settings.jobs_dir, "churn")
    ev = evaluate_day(local_settings, spec, DAY, today=TODAY)
    y, p = _joined(local_settings, DAY)
    assert len(y) == 3_000 and 0 < y.sum() < len(y)
    [row] = _evaluations(local_settings)
    assert abs(row["auc"] - _auc_by_pairs(y, p)) < 0.01
    assert row["auc"] == pytest.approx(_auc_by_pairs(y, p), abs=1e-6)
    assert str(row["run_id"]) == state.run_id and row["model_version"] == state.model_version
    assert row["rows_published"] == row["rows_labelled"] == 3_000 and row["positives"] == int(y.sum())
    # log loss and the decision's precision and recall, from the same tables
    q = np.clip(p, 1e-15, 1 - 1e-15)
    assert row["logloss"] == pytest.approx(float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q))), abs=1e-5)
    decided = p >= spec.decision.threshold
    assert row["decision_recall"] == pytest.approx(float((decided & (y == 1)).sum() / y.sum()), abs=1e-6)
    assert row["decision_precision"] == pytest.approx(float((decided & (y == 1)).sum() / max(decided.sum(), 1)), abs=1e-6)
    # calibration by score decile: ten bins of about 300 rows, each with its mean score and outcome rate
    assert len(row["calibration"]) == 10 and sum(b["rows"] for b in row["calibration"]) == 3_000
    assert row["holdout"]["auc"] > 0.7 and "calibration_error" in row["holdout"]  # the model's, for comparison
    # the comparison with the holdout, graded by the spec's thresholds (3,000 rows: the AUC wobbles by about 0.015)
    drop = row["holdout"]["auc"] - row["auc"]
    assert row["levels"]["auc_drop"]["value"] == pytest.approx(drop, abs=1e-5)
    expected = "alert" if drop > spec.evaluation.auc_drop.alert else "warn" if drop > spec.evaluation.auc_drop.warn else "ok"
    assert row["levels"]["auc_drop"]["level"] == expected and row["level"] == ev.level != "alert", row["levels"]
    # evaluated again: the same row, replaced
    evaluate_day(local_settings, spec, DAY, today=TODAY)
    assert len(_evaluations(local_settings)) == 1


def test_matured_days_are_found_once_and_again_after_a_republish(local_settings):
    spec = load_job(local_settings.jobs_dir, "churn")
    days = [DAY, DAY + timedelta(days=1)]
    for d in days:
        score_partition(local_settings, "churn", d)
    assert matured_days(local_settings, spec, TODAY) == days
    # a day whose outcomes have not matured yet is left for later
    assert matured_days(local_settings, spec, DAY + timedelta(days=30)) == [DAY]
    assert [e.ds for e in evaluate_matured(local_settings, spec, TODAY)] == [d.isoformat() for d in days]
    assert matured_days(local_settings, spec, TODAY) == []
    score_partition(local_settings, "churn", DAY)  # republished: its evaluation is of an older run
    assert matured_days(local_settings, spec, TODAY) == [DAY]


def test_refusals_name_the_day_the_file_and_the_fix(local_settings, tmp_path):
    spec = load_job(local_settings.jobs_dir, "churn")
    with pytest.raises(NightscoreError, match="no published predictions") as exc:
        evaluate_day(local_settings, spec, DAY, today=TODAY)
    assert "nightscore score --job churn" in str(exc.value)
    score_partition(local_settings, "churn", DAY)
    with pytest.raises(NightscoreError, match="not complete before 2026-04-14") as exc:
        evaluate_day(local_settings, spec, DAY, today=DAY + timedelta(days=3))
    assert "--early" in str(exc.value)
    assert evaluate_day(local_settings, spec, DAY, today=DAY + timedelta(days=3), early=True).rows_labelled == 3_000

    jobs = tmp_path / "jobs"
    shutil.copytree(local_settings.jobs_dir, jobs)
    bad = {
        "lacks columns ['churned']": "SELECT customer_id FROM demo.customer_activity WHERE ds = :ds",
        "repeated keys (customer_id)": "SELECT customer_id, churned FROM demo.customer_activity WHERE ds = :ds UNION ALL"
        " SELECT customer_id, churned FROM demo.customer_activity WHERE ds = :ds AND customer_id = 7",
        "other than 0 and 1": "SELECT customer_id, 2 AS churned FROM demo.customer_activity WHERE ds = :ds",
        "not a boolean or 0/1": "SELECT customer_id, 'yes' AS churned FROM demo.customer_activity WHERE ds = :ds",
    }
    for message, sql in bad.items():
        (jobs / "churn_outcomes.sql").write_text(sql)
        broken = load_job(jobs, "churn")
        with pytest.raises(NightscoreError, match=re.escape(message)) as exc:
            evaluate_day(local_settings, broken, DAY, today=TODAY)
        assert str(jobs / "churn_outcomes.sql") in str(exc.value), str(exc.value)
    # outcomes still unknown (NULL) are left out, not counted as negatives
    (jobs / "churn_outcomes.sql").write_text(
        "SELECT customer_id, CASE WHEN customer_id <= 1000 THEN churned END AS churned FROM demo.customer_activity WHERE ds = :ds"
    )
    ev = evaluate_day(local_settings, load_job(jobs, "churn"), DAY, today=TODAY)
    assert ev.rows_labelled == 1_000 and ev.rows_published == 3_000


def test_outcomes_turned_round_reach_the_alert_level(local_settings, webhook):
    spec = load_job(local_settings.jobs_dir, "churn")
    day = DAY + timedelta(days=1)
    score_partition(local_settings, "churn", DAY)
    score_partition(local_settings, "churn", day)
    flip_outcomes(local_settings, day)
    found = evaluate_matured(local_settings, spec, TODAY)
    assert [e.level for e in found] == ["ok", "alert"]
    bad = found[1]
    assert bad.metrics["auc"] < 0.5 and "auc_drop" in bad.alerts, bad.levels
    extra = alert_extra(found)
    assert extra is not None and extra["trigger"] == "performance" and extra["ds"] == day.isoformat() and extra["days"] == [day.isoformat()]
    [message] = [m["json"] for m in webhook.received]
    assert message["nightscore"]["kind"] == "performance" and message["nightscore"]["ds"] == day.isoformat()
    assert "auc_drop" in message["text"]


def test_a_job_without_an_evaluation_block_is_told_how_to_add_one(local_settings, tmp_path):
    jobs = tmp_path / "jobs"
    shutil.copytree(local_settings.jobs_dir, jobs)
    text = (jobs / "churn.yml").read_text()
    start = text.index("evaluation:")
    end = text.index("alerts:")
    (jobs / "churn.yml").write_text(text[:start] + text[end:])
    with pytest.raises(NightscoreError, match="no evaluation block") as exc:
        evaluate_day(local_settings, load_job(jobs, "churn"), date(2026, 3, 15), today=TODAY)
    assert "mature_days" in str(exc.value)
