"""Drift end to end on a real PostgreSQL: a day shifted by hand alerts on the shifted features only, and a
sharded run measures the same drift as an unsharded one (drift_metrics, scoring_runs.drift)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from pipeline import db
from pipeline.run import score_partition
from tests.conftest import DAY, shift_day

pytestmark = pytest.mark.integration


def _metrics(settings, run_id: str) -> dict[tuple[str, str], tuple[float, str]]:
    with db.engine(settings).connect() as conn:
        rows = conn.execute(
            sa.text("SELECT feature, metric, value, level FROM drift_metrics WHERE run_id = CAST(:r AS uuid)"), {"r": run_id}
        ).all()
    return {(r.feature, r.metric): (r.value, r.level) for r in rows}


def test_a_day_shifted_by_hand_alerts_on_those_features_only(local_settings):
    day = DAY + timedelta(days=1)
    quiet = score_partition(local_settings, "churn", day)
    before = _metrics(local_settings, quiet.run_id)
    assert before and {level for _, level in before.values()} == {"ok"}, {k: v for k, v in before.items() if v[1] != "ok"}
    shift_day(local_settings, day)  # one feature's mean moved, a category's share doubled
    state = score_partition(local_settings, "churn", day)
    after = _metrics(local_settings, state.run_id)
    raised = {feature for (feature, _), (_, level) in after.items() if level == "alert" and feature != "score"}
    assert raised == {"monthly_spend", "plan"}, {k: v for k, v in after.items() if v[1] != "ok"}
    assert after[("monthly_spend", "psi")][1] == after[("monthly_spend", "ks")][1] == "alert"
    assert after[("plan", "js")][1] == "alert"
    with db.engine(local_settings).connect() as conn:
        summary = conn.execute(sa.text("SELECT drift FROM scoring_runs WHERE run_id = CAST(:r AS uuid)"), {"r": state.run_id}).scalar()
    assert summary["level"] == "alert" and {"monthly_spend:psi", "plan:js"} <= set(summary["alerts"]), summary


def test_a_sharded_day_measures_the_drift_of_the_unsharded_day(local_settings):
    whole = score_partition(local_settings, "churn", DAY)
    split = score_partition(local_settings, "churn", DAY, shard_count=3, workers=2)
    a, b = _metrics(local_settings, whole.run_id), _metrics(local_settings, split.run_id)
    assert a.keys() == b.keys() and len(a) > 30
    assert {k: v[0] for k, v in a.items()} == pytest.approx({k: v[0] for k, v in b.items()}, abs=1e-9)
