"""The regression and multiclass demo jobs' DAGs, generated from their specs alone, run with ``dag.test()``:
score (with the asset event), train (the gate on the kind's metric) and evaluate."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from pipeline import db, registry
from tests.conftest import CUSTOMERS, DAY
from tests.dags.conftest import connection_env
from tests.dags.test_dag_runs import _at, _states, dag

pytestmark = [pytest.mark.integration, pytest.mark.airflow]


@pytest.fixture()
def local_airflow(local_settings, airflow_db, monkeypatch):
    for k, v in connection_env(local_settings).items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("NIGHTSCORE_DATABASE_URL", raising=False)
    return local_settings


@pytest.mark.parametrize(("job", "kind"), [("basket_value", "regression"), ("plan_choice", "multiclass")])
def test_each_kind_scores_trains_and_evaluates_in_airflow(local_airflow, job, kind):
    s = local_airflow
    dr = dag(f"score_{job}").test(logical_date=_at(DAY))
    assert str(dr.state) == "success", _states(dr)
    with db.engine(s).connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT count(*) AS n, count(scores) AS with_scores, count(label) AS labelled FROM predictions WHERE job = :j AND ds = :d"
            ),
            {"j": job, "d": DAY},
        ).one()
    assert rows.n == rows.with_scores == rows.labelled == CUSTOMERS
    # a new window, kept unless better on the kind's own metric
    model = f"{job}_xgb"
    dr = dag(f"train_{job}").test(logical_date=None, run_conf={"end": (DAY - timedelta(days=2)).isoformat(), "promote": "if_better"})
    assert str(dr.state) == "success", _states(dr)
    out = dr.get_task_instance("train").xcom_pull(task_ids="train")
    assert out["version"] == 2 and out["registered"] is True
    gate = "pinball" if kind == "regression" else "logloss"
    assert out["reason"].startswith(f"{gate} "), out["reason"]
    assert registry.aliases(db.engine(s), model)[(model, "champion")] == (2 if out["promoted"] else 1)
    dr = dag(f"evaluate_{job}").test(logical_date=None, run_conf={"ds": DAY.isoformat()})
    assert str(dr.state) == "success", _states(dr)
    with db.engine(s).connect() as conn:
        level, recorded_kind = conn.execute(
            sa.text("SELECT level, kind FROM evaluations WHERE job = :j AND ds = :d"), {"j": job, "d": DAY}
        ).one()
    assert recorded_kind == kind and level in ("ok", "warn", "alert")
