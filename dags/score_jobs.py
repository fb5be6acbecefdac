"""
# Nightly scoring: `score_<job>`

One DAG per job spec in `dags/jobs/*.yml`: **begin → shard × N → publish → monitor → drift_alert**.
`begin` creates the run and splits the day into the job's `shards` (a stable hash of the entity key);
each mapped `shard` task extracts, validates, scores and loads its own rows, on whichever worker runs
it (retried alone if it fails); `publish` checks the whole day and swaps it in atomically; `monitor`
measures drift and writes the manifest; `drift_alert` runs only when a drift metric reached its alert level
(it is *skipped* otherwise) and then emits the Asset `nightscore://drift/<job>`, which starts `train_<job>`. Only the run's small state goes through XCom; the data moves
as Parquet through the artifact store.

**Which day a run scores**
- a scheduled run scores the day its data interval covers: the run for day D has the interval
  [D 00:00, D+1 00:00) in the job's timezone and starts when that day is over;
- a backfill over [A, B] scores exactly the days A..B (one run per day, each with its own interval);
- a manual run (Trigger button, REST, CLI, `airflow dags test`) scores the `ds` parameter if given, else
  its logical date's day if that day is over, otherwise the latest complete day: the Trigger form as it
  opens (logical date pre-filled with *now*) scores yesterday. To score another day, fill `ds`.

**Parameters** (trigger form, backfill run config, REST `conf`): `ds`, `model_version` (pin a
registered version instead of the alias), `shards` (override the job spec's shard count), `shadow` (shadow
models, aliases or versions with commas between, instead of the spec's `model.shadow`), `dry_run`
(validate and score, publish nothing: the publish task is then *skipped* and no Asset event is emitted).

**Backfill from the UI with a pinned model**: tick *Override parameters on existing runs* before filling
*Model version*: Airflow 3.3's form sends the run parameters only with that box ticked, and a run without them
scores with the alias (its `begin` log warns). Each shard task's name shows the model it used.

**Reruns are safe**: publishing replaces the (job, ds) partition in one transaction, so a retry,
a rerun or a backfill leaves exactly one copy of the day. Validation failures and bad job specs
fail at once (no retries); database and S3 errors are retried with exponential backoff.

Results: `predictions` (one row per entity and day), `scoring_runs` (one row per attempt, linked
to the Airflow run id), and the run's artifacts (`runs/<job>/ds=<day>/<run_id>/`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, CronDataIntervalTimetable, Param, get_current_context, task
from airflow.sdk.exceptions import AirflowSkipException

from nightscore_airflow import tasks
from nightscore_airflow.assets import drift_asset, drift_extra, predictions_asset, published_extra
from nightscore_airflow.connections import use_jobs_dir
from nightscore_airflow.links import REPORT_LINKS
from nightscore_airflow.notifiers import DayFailedNotifier, deadline_alert
from nightscore_airflow.retries import DEFAULT_ARGS
from pipeline.jobs import JobSpec, load_each

TIMEOUTS = {
    "begin": timedelta(minutes=30),
    "shard": timedelta(hours=3),
    "publish": timedelta(hours=1),
    "monitor": timedelta(minutes=30),
}


def scoring_params(spec: JobSpec) -> dict[str, Param]:
    return {
        "ds": Param(
            None,
            type=["null", "string"],
            format="date",
            title="Day to score",
            description="Manual runs only. Empty: the logical date's day if it is over, else the latest complete day (yesterday). A backfill scores its own days.",
        ),
        "model_version": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            title="Model version",
            description=f"Pin a registered version of {spec.model.name} (see `nightscore model list`). Empty: the '{spec.model.alias}' alias.",
        ),
        "shards": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            maximum=256,
            title="Shards",
            description=f"Split the day into this many shards, each a task of its own. Empty: the job spec's ({spec.shards}).",
        ),
        "shadow": Param(
            None,
            type=["null", "string"],
            title="Shadow models",
            description="Aliases or versions of the model (commas between) that score the same rows into shadow_predictions. "
            f"Empty: the job spec's model.shadow ({', '.join(map(str, spec.model.shadow)) or 'none'}).",
        ),
        "dry_run": Param(False, type="boolean", title="Dry run", description="Validate and score, but publish nothing."),
    }


def build_scoring_dag(spec: JobSpec) -> DAG:
    asset = predictions_asset(spec.name)
    with DAG(
        dag_id=f"score_{spec.name}",
        description=spec.description or f"Nightly scoring of {spec.name}",
        doc_md=f"{__doc__}\n\n**This job**: {spec.description} (owner {spec.owner}, schedule `{spec.schedule}` {spec.timezone}, model `{spec.model.name}@{spec.model.alias}`).",
        schedule=CronDataIntervalTimetable(spec.schedule, timezone=spec.timezone),
        start_date=datetime(2020, 1, 1),
        catchup=False,
        max_active_runs=spec.max_active_runs,
        default_args={**DEFAULT_ARGS, "owner": spec.owner},
        params=scoring_params(spec),
        tags=["nightscore", "scoring", *spec.tags],
        on_failure_callback=DayFailedNotifier(spec.name) if spec.alerts.configured and spec.alerts.on_failure else None,
        deadline=deadline_alert(spec),
    ) as dag:
        job = spec.name

        @task(execution_timeout=TIMEOUTS["begin"])
        def begin() -> list[dict[str, Any]]:
            return tasks.begin(job, get_current_context())

        # multiple_outputs=False on every task returning a dict: from the "-> dict" annotation Airflow would push
        # each key as an XCom of its own, one execution-API call each (the monitor's 24 took 23 s under make load)
        @task(execution_timeout=TIMEOUTS["shard"], map_index_template="{{ shard_label }}", multiple_outputs=False)
        def shard(work: dict[str, Any]) -> dict[str, Any]:
            context = get_current_context()
            # the mapped task's name in the UI, rendered when it ends:
            # "shard 0 · 2026-11-23 · 3,000 rows, 0 quarantined · churn_xgb v2 (champion)"
            context["shard_label"] = tasks.shard_label(work)  # type: ignore[literal-required]
            out = tasks.shard(work["state"], work["index"], context)
            context["shard_label"] = tasks.shard_label(work, out)  # type: ignore[literal-required]
            return out

        @task(execution_timeout=TIMEOUTS["publish"], outlets=[asset], multiple_outputs=False)
        def publish(work: list[dict[str, Any]]) -> dict[str, Any]:
            context = get_current_context()
            out = tasks.step("publish", work[0]["state"], context)
            if out["dry_run"]:
                raise AirflowSkipException(f"dry run: {out['counts'].get('scored')} rows scored, nothing published")
            # what a downstream DAG scheduled on the asset reads from its triggering event
            context["outlet_events"][asset].extra = published_extra(out)
            return out

        @task(execution_timeout=TIMEOUTS["monitor"], trigger_rule="none_failed", multiple_outputs=False)
        def monitor(work: list[dict[str, Any]]) -> dict[str, Any]:
            published = get_current_context()["ti"].xcom_pull(task_ids="publish")
            return tasks.step("finish", published or work[0]["state"], get_current_context())

        drifted = drift_asset(spec.name)

        @task(execution_timeout=TIMEOUTS["monitor"], outlets=[drifted], multiple_outputs=False)
        def drift_alert(monitored: dict[str, Any]) -> dict[str, Any]:
            """Skipped unless the day's drift reached its alert level; then its Asset event starts train_<job>."""
            extra = drift_extra(monitored)
            if extra is None:
                raise AirflowSkipException(
                    f"drift level {(monitored.get('drift') or {}).get('level', 'unknown')}: below alert, no retraining"
                )
            get_current_context()["outlet_events"][drifted].extra = extra
            return extra

        work = begin()
        watched = monitor(work)
        watched.operator.operator_extra_links = REPORT_LINKS  # buttons on the monitor task: Data Docs, manifest
        shard.expand(work=work) >> publish(work) >> watched
        drift_alert(watched)
    return dag


for _spec in load_each(use_jobs_dir(Path(__file__).resolve().parent / "jobs"))[0]:  # a broken spec: check_job_specs.py
    globals()[f"score_{_spec.name}"] = build_scoring_dag(_spec)
