"""Who hears about a day that failed or is late: the job spec's ``alerts`` (webhook, email), sent through
:mod:`pipeline.alerts` with what the run's ledger row says.

- :class:`DayFailedNotifier`: the scoring DAG's ``on_failure_callback``, once per failed DAG run;
- :func:`deadline_alert`: the scoring DAG's ``deadline`` (Airflow's ``DeadlineAlert``), whose callback
  :func:`day_late` tells when a scheduled day was not published by ``alerts.deadline`` the next day.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

from airflow.sdk import BaseNotifier

from nightscore_airflow.connections import load_spec, task_settings

log = logging.getLogger(__name__)


class DayFailedNotifier(BaseNotifier):
    """The scoring DAG's ``on_failure_callback``: once per failed DAG run (after the tasks' retries), one
    message to the job spec's ``alerts`` naming the job, the day and the error from the run's ledger row."""

    template_fields = ()

    def __init__(self, job: str) -> None:
        super().__init__()
        self.job = job

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        """Nothing to render (no template fields). Airflow's own would build a Jinja environment from
        ``context["dag"]``, which ``dag.test()`` hands over serialized, without one."""

    def notify(self, context: Any) -> None:
        from pipeline import alerts

        spec = load_spec(self.job)
        if not (spec.alerts.configured and spec.alerts.on_failure):
            return
        dag_run, ti = context.get("dag_run"), context.get("ti")
        airflow_run_id = getattr(dag_run, "run_id", None) or context.get("run_id")
        task = getattr(ti, "task_id", None)
        row = _ledger_row(airflow_run_id)
        error = (row or {}).get("error") or f"task {task or '?'} failed; its log says why"
        alerts.route(
            _engine(),
            spec.alerts,
            alerts.Alert(
                job=self.job,
                ds=str(row["ds"]) if row else None,
                kind="failed",
                summary=f"the day failed in {row.get('stage') if row and row.get('stage') else task or 'a task'}; nothing was published, the previous data is untouched",
                detail=str(error),
                run_id=str(row["run_id"]) if row else None,
                airflow_run_id=airflow_run_id,
            ),
        )


def day_late(context: dict[str, Any] | None = None, job: str = "", deadline: str = "") -> None:
    """The scoring DAG's deadline callback (Airflow's ``DeadlineAlert``, run by the executor): the scheduled
    day was not published by ``deadline`` on the next day. Sends one message unless the ledger shows the
    day published after all."""
    from zoneinfo import ZoneInfo

    from pipeline import alerts

    spec = load_spec(job)
    dag_run = (context or {}).get("dag_run") or {}
    airflow_run_id = dag_run.get("dag_run_id") or dag_run.get("run_id")
    if str(dag_run.get("run_type", "scheduled")).lower() != "scheduled":
        # a backfill or manual run of an old day is past its deadline from the start: not news
        log.info("deadline %s of %s passed for a %s run (%s): no alert", deadline, job, dag_run.get("run_type"), airflow_run_id)
        return
    row = _ledger_row(airflow_run_id)
    if row is None and str(dag_run.get("state", "")).lower() in ("queued", "running"):
        # a deadline already past when the run starts fires while its begin task is still creating the
        # run's ledger row: wait for the row a while, so the alert says where the run is
        row = _ledger_row(airflow_run_id, wait_s=LEDGER_WAIT_S)
    if row and row.get("status") in ("published", "succeeded"):
        log.info("deadline %s passed, but %s %s was published (run %s)", deadline, job, row["ds"], row["run_id"])
        return
    logical = dag_run.get("logical_date")
    if row:
        ds: str | None = str(row["ds"])
    elif logical:  # the scheduled run's day: its logical date in the job's timezone
        ds = str(datetime.fromisoformat(str(logical).replace("Z", "+00:00")).astimezone(ZoneInfo(spec.timezone)).date())
    else:
        ds = None
    where = (
        f"the run is {row['status']} in {row.get('stage') or 'its first stage'}"
        if row
        else f"the Airflow run is {dag_run.get('state', 'not started')}"
    )
    alerts.route(
        _engine(),
        spec.alerts,
        alerts.Alert(
            job=job,
            ds=ds,
            kind="late",
            summary=f"not published by {deadline} ({spec.timezone}) the next day; {where}",
            detail=str((row or {}).get("error") or ""),
            run_id=str(row["run_id"]) if row else None,
            airflow_run_id=airflow_run_id,
        ),
    )


def _engine() -> Any:
    """The ledger's engine for the alert rules' memory, or None when the database cannot be reached (the
    alert then goes out unrecorded: never lost because the ledger is down)."""
    from pipeline import db
    from pipeline.errors import first_line

    try:
        return db.engine(task_settings())
    except Exception as exc:
        log.warning("alert sent without the ledger (%s)", first_line(exc))
        return None


def deadline_alert(spec: Any) -> Any:
    """The scoring DAG's ``deadline``: a day not published by ``alerts.deadline`` the next day (None if unset)."""
    after = spec.alerts.deadline_after_day()
    if after is None or not spec.alerts.configured:
        return None
    from airflow.sdk.definitions.callback import SyncCallback
    from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_LOGICAL_DATE,
        interval=after,
        callback=SyncCallback(day_late, kwargs={"job": spec.name, "deadline": spec.alerts.deadline}),
        name=f"{spec.name} published by {spec.alerts.deadline} the next day",
    )


LEDGER_WAIT_S = 60.0


def _ledger_row(airflow_run_id: str | None, wait_s: float = 0.0) -> dict[str, Any] | None:
    """The latest ``scoring_runs`` row of an Airflow run (None if it never got that far, or on any error),
    looked for again every 2 s for up to ``wait_s`` seconds while there is none."""
    if not airflow_run_id:
        return None
    try:
        from pipeline import db

        eng = db.engine(task_settings())
        until = time.monotonic() + wait_s
        while True:
            with eng.connect() as conn:
                row = conn.execute(db.query("latest_run_of_airflow_run"), {"r": airflow_run_id}).mappings().first()
            if row or time.monotonic() >= until:
                return dict(row) if row else None
            time.sleep(2.0)
    except Exception as exc:
        log.warning("the alert could not read the run's ledger row: %s", str(exc).splitlines()[0])
        return None
