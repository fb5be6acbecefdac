"""The README's alert rules on the metrics of a day with an alert and of a day without; the metric names'
conventions; the alert rules' fields; a retired spec key refused."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import yaml
from prometheus_client import generate_latest

from pipeline import alerts
from pipeline.config import PROJECT_ROOT
from pipeline.errors import JobSpecError
from pipeline.jobs import Alerts, load_spec
from pipeline.metrics import build_registry
from tests.promrules import fires, readme_rules, samples

pytestmark = pytest.mark.unit
RULES = readme_rules(PROJECT_ROOT / "docs" / "metrics.md")
NOW = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
DAY = date(2026, 12, 6)


def _facts(*, drift_level: str = "ok", evaluation_level: str = "ok", status: str = "succeeded", alerts_raised: int = 0) -> dict:
    published = NOW - timedelta(hours=3)
    return {
        "model": {"model_name": "churn_xgb", "alias": "champion", "version": 3, "kind": "binary"},
        "publish": {"published_at": published, "ds": DAY},
        "last": {
            "status": status,
            "finished_at": NOW - timedelta(hours=2),
            **{f"rows_{o}": 1000 for o in ("extracted", "valid", "scored", "published")},
            "rows_quarantined": 0,
            "stage_seconds": {"extract": 1.5, "score": 2.0},
        },
        "drift": [
            {"feature": "monthly_spend", "metric": "psi", "value": 0.4 if drift_level == "alert" else 0.01, "level": drift_level,
             "ds": DAY, "finished_at": published},
            {"feature": "plan", "metric": "js", "value": 0.02, "level": "ok", "ds": DAY, "finished_at": published},
        ],  # fmt: skip
        "evaluation": {
            "kind": "binary", "ds": DAY - timedelta(days=31), "evaluated_at": NOW, "level": evaluation_level,
            "auc": 0.71, "logloss": 0.4, "brier": 0.1, "decision_precision": 0.5, "decision_recall": 0.3, "calibration_error": 0.02,
            "metrics": {}, "levels": {"auc_drop": {"value": 0.08, "level": evaluation_level}, "calibration_error": {"value": 0.02, "level": "ok"}},
        },  # fmt: skip
        "counts": [{"status": status, "runs": 4, "scored": 4000, "quarantined": 12, "published": 3988}],
        "alerts": [{"kind": "performance", "level": "alert", "sent": True, "n": alerts_raised}] if alerts_raised else [],
    }


def _text(facts: dict) -> str:
    return generate_latest(build_registry("churn", facts)).decode()


def test_the_readme_rules_fire_on_a_day_with_an_alert_and_not_on_a_day_without():
    quiet = _text(_facts())
    assert set(RULES) == {"NightscoreNoPublish", "NightscoreRunFailed", "NightscoreDrift", "NightscorePerformance", "NightscoreAlertRaised"}
    for name, expr in RULES.items():
        assert not fires(expr, quiet, now=NOW.timestamp(), before=quiet), name
    loud = _text(_facts(drift_level="alert", evaluation_level="alert", status="failed", alerts_raised=1))
    for name in ("NightscoreRunFailed", "NightscoreDrift", "NightscorePerformance", "NightscoreAlertRaised"):
        assert fires(RULES[name], loud, now=NOW.timestamp(), before=quiet), name
    assert fires(RULES["NightscoreNoPublish"], quiet, now=(NOW + timedelta(hours=24)).timestamp())  # 27 hours after the publish
    with pytest.raises(ValueError, match="does not understand"):
        fires("rate(nightscore_runs_total[5m]) > 1", quiet, now=0)


def test_one_quantity_a_name_units_counters_and_the_model_info():
    got = {(n, tuple(sorted(lab.items()))): v for n, lab, v in samples(_text(_facts(alerts_raised=2)))}
    job = (("scoring_job", "churn"),)
    names = {n for n, _ in got}
    assert ("nightscore_model_info", (("alias", "champion"), ("kind", "binary"), ("model_name", "churn_xgb"), ("model_version", "3"), *job)) in got
    assert got[("nightscore_drift_psi", (("feature", "monthly_spend"), *job))] == 0.01
    assert got[("nightscore_drift_js_distance", (("feature", "plan"), *job))] == 0.02
    assert got[("nightscore_evaluation_auc", job)] == 0.71 and got[("nightscore_evaluation_auc_drop", job)] == 0.08
    assert got[("nightscore_evaluation_calibration_error", job)] == 0.02  # a metric and its comparison: once
    assert got[("nightscore_evaluation_day_timestamp_seconds", job)] == datetime(2026, 11, 5, tzinfo=UTC).timestamp()
    assert got[("nightscore_rows_quarantined_total", job)] == 12 and got[("nightscore_runs_total", (*job, ("status", "succeeded")))] == 4
    assert got[("nightscore_alerts_total", (("kind", "performance"), ("level", "alert"), *job))] == 2
    assert "nightscore_drift_value" not in names and "nightscore_evaluation_value" not in names  # no name carries several quantities
    assert not any(n.endswith("_created") for n in names)


def test_alert_rules_fields_and_the_message_names_what_crossed():
    rules = Alerts(rules={"drift": {"cooldown": "7d", "consecutive_days": 2}, "training": {"min_level": "info"}})
    assert rules.rule("drift").cooldown_delta() == timedelta(days=7) and rules.rule("late").min_level == "alert"
    with pytest.raises(ValueError, match="only drift alerts wait for days in a row"):
        Alerts(rules={"performance": {"consecutive_days": 2}})
    with pytest.raises(ValueError):
        Alerts(rules={"drift": {"cooldown": "a week"}})
    alert = alerts.Alert("churn", "2026-12-06", "drift", "drift at its alert level", level="alert")
    alert.crossed = [{"what": "monthly_spend psi", "value": 0.41, "threshold": 0.25, "level": "alert"}]
    assert "- monthly_spend psi: 0.41 (above alert 0.25)" in alert.text() and "[alert]" in alert.text()
    # held back below min_level without a database: nothing sent, nothing raised
    assert alerts.route(None, Alerts(webhook="http://127.0.0.1:9/x"), alerts.Alert("churn", None, "training", "v2", level="info")).held_back


def test_a_retired_spec_key_is_refused_with_what_to_do(tmp_path):
    raw = yaml.safe_load((PROJECT_ROOT / "dags" / "jobs" / "churn.yml").read_text())
    raw["drift"] = {"psi_warn": 0.1, "psi_fail": 0.3}
    for name in ("churn.sql", "churn_train.sql", "churn_outcomes.sql"):
        (tmp_path / name).write_text((PROJECT_ROOT / "dags" / "jobs" / name).read_text())
    (tmp_path / "churn.yml").write_text(yaml.safe_dump(raw))
    with pytest.raises(JobSpecError, match=r"drift.psi_fail is no longer read .*remove it"):
        load_spec(tmp_path / "churn.yml")
