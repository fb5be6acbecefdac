"""
# Retraining: `train_<job>`

One DAG per job spec in `dags/jobs/*.yml`, on the spec's `training.schedule` (weekly by default), **or**
when a scored day's drift reaches its alert level (the Asset `nightscore://drift/<job>`, emitted by
`score_<job>`'s `drift_alert` task), **or** when a day's performance on its delayed outcomes does (the Asset
`nightscore://performance/<job>`, emitted by `evaluate_<job>`), and on demand. The task log starts with
why it runs (the event: drift or performance, which day, model and metrics; or its schedule). It trains an XGBoost model on the spec's training query, registers it as a new version in
the model registry, and moves the job's alias (`champion`) to it **only if** it beats the current
champion's AUC on the same held-out days by at least `training.promote_margin`. Otherwise the
champion stays, and the task log says so with both scores.

**Parameters**: `end` (last day of the held-out window; empty: the latest complete day) and
`promote` (`if_better`, the default; `always`; `never` to register only).

Undo a promotion with `nightscore model rollback --model <name>`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, AssetOrTimeSchedule, CronTriggerTimetable, Param, get_current_context, task

from nightscore_airflow import tasks
from nightscore_airflow.assets import retrain_assets
from nightscore_airflow.connections import use_jobs_dir
from nightscore_airflow.retries import DEFAULT_ARGS
from pipeline.jobs import JobSpec, load_each


def build_training_dag(spec: JobSpec) -> DAG:
    with DAG(
        dag_id=f"train_{spec.name}",
        description=f"Retrain {spec.model.name} and promote it if it beats {spec.model.alias}",
        doc_md=f"{__doc__}\n\n**This job**: model `{spec.model.name}`, schedule `{spec.training.schedule}` {spec.timezone}, margin {spec.training.promote_margin}.",
        schedule=AssetOrTimeSchedule(
            timetable=CronTriggerTimetable(spec.training.schedule, timezone=spec.timezone), assets=retrain_assets(spec.name)
        ),
        start_date=datetime(2020, 1, 1),
        catchup=False,
        max_active_runs=1,
        default_args={**DEFAULT_ARGS, "owner": spec.owner},
        params={
            "end": Param(
                None, type=["null", "string"], format="date", title="Last held-out day", description="Empty: the latest complete day."
            ),
            "promote": Param(
                "if_better",
                enum=["if_better", "always", "never"],
                title="Promotion",
                description=f"if_better: move '{spec.model.alias}' only when AUC improves by {spec.training.promote_margin}.",
            ),
        },
        tags=["nightscore", "training", *spec.tags],
    ) as dag:
        job = spec.name

        @task(execution_timeout=timedelta(hours=3), multiple_outputs=False)
        def train() -> dict[str, Any]:
            return tasks.train(job, get_current_context())

        train()
    return dag


for _spec in load_each(use_jobs_dir(Path(__file__).resolve().parent / "jobs"))[0]:  # a broken spec: check_job_specs.py
    globals()[f"train_{_spec.name}"] = build_training_dag(_spec)
