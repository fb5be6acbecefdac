"""Performance estimated before labels, end to end on a real PostgreSQL: a scored churn day gets its estimate
in ``performance_estimates`` from the run itself; once evaluated, ``performance_estimate_errors`` gives the
error; the job report draws the estimate beside the realized AUC and warns when the model's holdout is not
calibrated; an estimate at the alert level raises a ``performance_estimated`` alert that does not hold back
the day's realized alert."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta

import numpy as np
import pytest
import sqlalchemy as sa
import yaml
from typer.testing import CliRunner

from pipeline import db
from pipeline.cli import app
from pipeline.estimate import apply_map, expected_auc
from pipeline.evaluate import evaluate_day
from pipeline.jobs import load_job
from pipeline.lookback import write_report
from pipeline.run import score_partition
from tests.conftest import CUSTOMERS, DAY
from tests.integration.test_cli import _env

pytestmark = pytest.mark.integration
runner = CliRunner()
TODAY = DAY + timedelta(days=60)  # the outcomes of every test day have matured (the demo spec: 30 days)
FEATURES = (
    "tenure_months", "monthly_spend", "sessions_30d", "support_tickets_90d", "days_since_last_login",
    "avg_session_minutes", "discount_pct", "plan", "region", "payment_method",
)  # fmt: skip


def _rows(settings, sql: str, **params) -> list[dict]:
    with db.engine(settings).connect() as conn:
        return [dict(r) for r in conn.execute(sa.text(sql), params).mappings()]


def _jobs(settings, tmp_path, **estimate) -> object:
    """The demo jobs copied, churn's evaluation.estimate set as given; settings that read them."""
    jobs = tmp_path / "jobs"
    shutil.copytree(settings.jobs_dir, jobs)
    raw = yaml.safe_load((jobs / "churn.yml").read_text())
    raw["evaluation"]["estimate"] = estimate
    (jobs / "churn.yml").write_text(yaml.safe_dump(raw))
    return settings.with_overrides(jobs_dir=jobs)


def test_a_scored_day_is_estimated_then_reconciled_and_drawn_in_the_job_report(local_settings, tmp_path):
    s = local_settings
    state = score_partition(s, "churn", DAY)
    [est] = _rows(s, "SELECT * FROM performance_estimates")
    scores = np.array([r["score"] for r in _rows(s, "SELECT score FROM predictions WHERE job = 'churn' AND ds = :d", d=DAY)])
    assert str(est["run_id"]) == state.run_id and est["ds"] == DAY and est["rows"] == CUSTOMERS == len(scores)
    assert est["model_version"] == state.model_version and est["threshold"] == 0.5
    # the demo spec estimates through the model's holdout calibration map (its scores are sharper than its outcomes)
    [model] = _rows(s, "SELECT metrics FROM model_versions WHERE model_name = 'churn_xgb' AND version = :v", v=state.model_version)
    checks = model["metrics"]
    assert checks["estimate_auc_gap"] > 0.02 and abs(checks["estimate_auc_gap_mapped"]) < 0.02, checks
    p = apply_map(checks["calibration_map"], scores)
    assert est["auc"] == pytest.approx(expected_auc(p, scores), abs=1e-6)  # from the published scores, ranked as published
    decided = scores >= 0.5
    assert est["expected_tp"] == pytest.approx(p[decided].sum(), rel=1e-6)
    assert est["expected_fn"] == pytest.approx(p[~decided].sum(), rel=1e-6)
    assert est["expected_tp"] + est["expected_fp"] + est["expected_tn"] + est["expected_fn"] == pytest.approx(CUSTOMERS)
    assert est["calibrated"] is True and est["map_used"] is True and est["why"] is None
    assert est["holdout_auc_gap"] == checks["estimate_auc_gap_mapped"] and est["holdout_calibration_error"] == checks["calibration_error"]
    assert est["level"] == "ok" and est["seconds"] < 0.5, est
    assert _rows(s, "SELECT * FROM alert_log WHERE kind = 'performance_estimated'") == []
    [grants] = _rows(
        s,
        "SELECT has_table_privilege('nightscore_writer', 'performance_estimates', 'INSERT, UPDATE') AS writes,"
        " has_table_privilege('nightscore_writer', 'performance_estimate_errors', 'SELECT') AS reads,"
        " has_table_privilege('nightscore_reader', 'performance_estimates', 'SELECT') AS reader",
    )
    assert grants == {"writes": True, "reads": True, "reader": False}  # the pipeline's login writes it; applications never see it
    assert _rows(s, "SELECT * FROM performance_estimate_errors") == []  # not evaluated yet

    # once the outcomes arrive: the realized AUC beside the estimate, and its error
    evaluate_day(s, load_job(s.jobs_dir, "churn"), DAY, today=TODAY)
    [ev] = _rows(s, "SELECT * FROM evaluations")
    [rec] = _rows(s, "SELECT * FROM performance_estimate_errors WHERE job = 'churn'")
    assert rec["realized_auc"] == ev["auc"] and rec["auc_error"] == pytest.approx(est["auc"] - ev["auc"], abs=1e-9)
    assert rec["precision_error"] == pytest.approx(est["decision_precision"] - ev["decision_precision"], abs=1e-9)
    assert rec["recall_error"] == pytest.approx(est["decision_recall"] - ev["decision_recall"], abs=1e-9)
    # the realized accuracy, as counted from the two tables
    truth = _rows(
        s,
        "SELECT p.score, a.churned FROM predictions p JOIN demo.customer_activity a ON a.ds = p.ds AND a.customer_id::text = p.entity_id"
        " WHERE p.job = 'churn' AND p.ds = :d",
        d=DAY,
    )
    right = sum((r["score"] >= 0.5) == bool(r["churned"]) for r in truth) / len(truth)
    assert rec["realized_accuracy"] == pytest.approx(right, abs=1e-9)
    # 3,000 rows: the realized AUC wobbles by about 0.015 around what the calibrated scores lead one to expect
    assert abs(rec["auc_error"]) < 0.05 and abs(rec["accuracy_error"]) < 0.05, rec

    # the job report: the estimate and the realized AUC on one axis, the past estimate with its error, no warning
    done = write_report(s, load_job(s.jobs_dir, "churn"), 3, last=DAY + timedelta(days=1), path=tmp_path / "job.html")
    html = done.path.read_text()
    section = html.split('id="estimate"')[1].split("</section>")[0]
    assert 'aria-label="estimated and realized AUC per day"' in section and "<svg" in section
    assert f"{est['auc']:.4f}" in section and f"{ev['auc']:.4f}" in section and f"{est['auc'] - ev['auc']:+.4f}" in section
    assert "estimate-warning" not in section and "reconciled day" in section

    # nightscore estimate: a day published earlier, again (one row per day, replaced)
    res = runner.invoke(app, ["estimate", "--job", "churn", "--ds", DAY.isoformat(), "--json"], env=_env(s))
    assert res.exit_code == 0, res.output
    [again] = json.loads(res.output)
    assert again["metrics"]["auc"] == pytest.approx(est["auc"], abs=1e-6) and again["run_id"] == state.run_id
    assert len(_rows(s, "SELECT * FROM performance_estimates")) == 1
    res = runner.invoke(
        app, ["estimate", "--job", "churn", "--start", DAY.isoformat(), "--end", (DAY + timedelta(days=2)).isoformat()], env=_env(s)
    )
    assert res.exit_code == 0 and "estimated AUC" in res.output and res.output.count("churn 2026-") == 1, res.output
    res = runner.invoke(app, ["estimate", "--job", "churn", "--ds", (DAY + timedelta(days=1)).isoformat()], env=_env(s))
    assert res.exit_code == 1 and "no published predictions" in res.output, res.output
    res = runner.invoke(app, ["estimate", "--job", "basket_value", "--ds", DAY.isoformat()], env=_env(s))
    assert res.exit_code == 1 and "binary models only" in " ".join(res.output.split()), res.output
    # the metrics: the latest estimate, its day, and the reconciled error
    text = (s.home / "metrics" / "nightscore_churn.prom").read_text()
    assert 'nightscore_estimated_auc{scoring_job="churn"}' in text and "nightscore_estimate_day_timestamp_seconds" in text
    assert 'nightscore_estimate_calibrated{scoring_job="churn"} 1.0' in text and "nightscore_estimate_auc_error" in text


def test_a_model_not_calibrated_on_its_holdout_is_warned_about_and_the_map_repairs_it(local_settings, tmp_path):
    # the raw scores of the demo model: right on average per decile, too sharp for its AUC to be estimated from
    raw = _jobs(local_settings, tmp_path, use_calibration_map=False)
    score_partition(raw, "churn", DAY)
    [est] = _rows(raw, "SELECT * FROM performance_estimates")
    assert est["calibrated"] is False and est["map_used"] is False and est["holdout_calibration_error"] < 0.05
    assert est["holdout_auc_gap"] > 0.02 and "auc_gap_warn" in est["why"], est
    html = write_report(raw, load_job(raw.jobs_dir, "churn"), 3, last=DAY, path=tmp_path / "job.html").path.read_text()
    section = html.split('id="estimate"')[1].split("</section>")[0]
    assert "estimate-warning" in section and "Estimates not reliable" in section and "churn_xgb v1" in section
    assert "auc_gap_warn 0.02" in section and "use_calibration_map: true" in section
    assert 'aria-label="estimated and realized AUC per day"' in section

    # a calibration error above the threshold (0: any) marks it too; through the map the scores are repaired
    strict = _jobs(local_settings, tmp_path / "strict", calibration_warn=0.0, auc_gap_warn=1.0)
    score_partition(strict, "churn", DAY)
    [est] = _rows(strict, "SELECT * FROM performance_estimates")
    assert est["calibrated"] is False and "calibration_warn 0.0" in est["why"] and "auc_gap" not in est["why"]
    mapped = _jobs(local_settings, tmp_path / "mapped", calibration_warn=0.0, use_calibration_map=True)
    score_partition(mapped, "churn", DAY)
    [est] = _rows(mapped, "SELECT * FROM performance_estimates")
    assert est["calibrated"] is True and est["map_used"] is True


def test_an_estimate_at_the_alert_level_raises_an_estimated_alert_that_leaves_the_realized_one_alone(local_settings, webhook):
    s = local_settings
    # what reaches the model that day has lost its information: every row carries one customer's features, so
    # every score ties and the expected AUC is 0.5, far below the holdout's
    cols = ", ".join(FEATURES)
    with db.engine(s).begin() as conn:
        conn.execute(
            sa.text(
                f"UPDATE demo.customer_activity SET ({cols}) = (SELECT {cols} FROM demo.customer_activity WHERE ds = :d ORDER BY customer_id LIMIT 1)"
                " WHERE ds = :d"
            ),
            {"d": DAY},
        )
    state = score_partition(s, "churn", DAY)
    [est] = _rows(s, "SELECT * FROM performance_estimates")
    assert est["auc"] == 0.5 and est["level"] == "alert" and est["auc_drop"] > 0.06
    [logged] = _rows(s, "SELECT * FROM alert_log WHERE kind = 'performance_estimated'")
    assert logged["ds"] == DAY and logged["level"] == "alert" and logged["held_back"] is None
    assert logged["detail"]["crossed"][0]["estimated"] is True and logged["detail"]["run_id"] == state.run_id
    [message] = [m["json"] for m in webhook.received if m["json"]["nightscore"]["kind"] == "performance_estimated"]
    assert "estimated" in message["text"] and "estimated auc_drop" in message["text"] and message["nightscore"]["ds"] == DAY.isoformat()
    assert message["nightscore"]["crossed"][0]["estimated"] is True

    # the same day again: one estimated alert a day
    score_partition(s, "churn", DAY)
    logged = _rows(s, "SELECT held_back FROM alert_log WHERE kind = 'performance_estimated' ORDER BY alert_id")
    assert [r["held_back"] for r in logged] == [None, "already sent for this day"]
    # the outcomes arrive: the realized alert of the same day is sent as well
    ev = evaluate_day(s, load_job(s.jobs_dir, "churn"), DAY, today=TODAY)
    assert ev.level == "alert"
    [realized] = _rows(s, "SELECT * FROM alert_log WHERE kind = 'performance'")
    assert realized["held_back"] is None and realized["ds"] == DAY
    assert [m for m in webhook.received if m["json"]["nightscore"]["kind"] == "performance"]
