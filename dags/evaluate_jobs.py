"""
# Delayed-label performance: `evaluate_<job>`

One DAG per job spec in `dags/jobs/*.yml` that has an `evaluation:` block, on its `evaluation.schedule`
(daily by default). Its `evaluate` task finds the published days whose outcomes have matured
(`evaluation.mature_days` after the day, within `evaluation.lookback_days`) and that have no evaluation of
their published run yet, joins each day's predictions with the outcome query's rows, and records AUC,
log loss, Brier score, the decision's precision and recall and calibration by score decile in the
`evaluations` table, beside the model's holdout metrics. `performance_alert` is *skipped* unless a day
reached its alert level (AUC drop, log-loss rise or calibration error over the spec's thresholds); then it
emits the Asset `nightscore://performance/<job>`, which starts `train_<job>`.

**Parameters**: `ds` (one published day; empty: every matured day not yet evaluated) and `early`
(evaluate `ds` before its outcomes have matured). The CLI does the same: `nightscore evaluate --job <job>`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, CronTriggerTimetable, Param, get_current_context, task
from airflow.sdk.exceptions import AirflowSkipException

from nightscore_airflow import tasks
from nightscore_airflow.assets import performance_asset
from nightscore_airflow.connections import use_jobs_dir
from nightscore_airflow.retries import DEFAULT_ARGS
from pipeline.jobs import JobSpec, load_each


def build_evaluation_dag(spec: JobSpec) -> DAG:
    assert spec.evaluation is not None
    with DAG(
        dag_id=f"evaluate_{spec.name}",
        description=f"{spec.name}: published predictions against the outcomes, {spec.evaluation.mature_days} days on",
        doc_md=f"{__doc__}\n\n**This job**: outcomes mature after {spec.evaluation.mature_days} days; schedule `{spec.evaluation.schedule}` {spec.timezone}.",
        schedule=CronTriggerTimetable(spec.evaluation.schedule, timezone=spec.timezone),
        start_date=datetime(2020, 1, 1),
        catchup=False,
        max_active_runs=1,
        default_args={**DEFAULT_ARGS, "owner": spec.owner},
        params={
            "ds": Param(
                None, type=["null", "string"], format="date", title="Day", description="Empty: every matured day not yet evaluated."
            ),
            "early": Param(
                False, type="boolean", title="Before the outcomes mature", description="Evaluate the day on the outcomes known so far."
            ),
        },
        tags=["nightscore", "evaluation", *spec.tags],
    ) as dag:
        job = spec.name
        asset = performance_asset(job)

        @task(execution_timeout=timedelta(hours=2), multiple_outputs=False)
        def evaluate() -> dict[str, Any]:
            return tasks.evaluate(job, get_current_context())

        @task(execution_timeout=timedelta(minutes=10), outlets=[asset], multiple_outputs=False)
        def performance_alert(result: dict[str, Any]) -> dict[str, Any]:
            """Skipped unless a day's performance reached its alert level; then its Asset event starts train_<job>."""
            if result["alert"] is None:
                levels = ", ".join(f"{e['ds']} {e['level']}" for e in result["evaluations"]) or "no day evaluated"
                raise AirflowSkipException(f"below the alert level ({levels}): no retraining")
            get_current_context()["outlet_events"][asset].extra = result["alert"]
            return result["alert"]

        performance_alert(evaluate())
    return dag


for _spec in load_each(use_jobs_dir(Path(__file__).resolve().parent / "jobs"))[0]:  # a broken spec: check_job_specs.py
    if _spec.evaluation is not None:
        globals()[f"evaluate_{_spec.name}"] = build_evaluation_dag(_spec)
