"""Task bodies shared by the nightscore DAGs: read connections, pick the day, call one `pipeline` step.

Imported by the DAG files in ``dags/`` only (it needs Airflow; the rest of ``pipeline`` does not). It lives in
the installed package so that every tool finds it: Airflow's DAG processor, a plain ``DagBag('dags')``,
``python dags/score_jobs.py``. Nothing here runs at parse time: every import of the heavy libraries (pandas,
pyarrow, xgboost, great_expectations, sqlalchemy, boto3) happens inside a task, on the worker.
"""

from __future__ import annotations

import logging
import os
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import BaseNotifier, BaseOperatorLink
from airflow.sdk.definitions.retry_policy import ExceptionRetryPolicy, RetryAction, RetryRule

log = logging.getLogger(__name__)

# the job specs: NIGHTSCORE_JOBS_DIR, else the `jobs` folder beside the DAG files (use_jobs_dir)
JOBS_DIR = Path(os.environ.get("NIGHTSCORE_JOBS_DIR") or Path(__file__).resolve().parent.parent / "dags" / "jobs")


def use_jobs_dir(folder: Path) -> Path:
    """Called by each DAG file with the ``jobs`` folder beside it: the job specs its DAGs and tasks read,
    unless NIGHTSCORE_JOBS_DIR names others. Returns the folder in use."""
    global JOBS_DIR
    if not os.environ.get("NIGHTSCORE_JOBS_DIR"):
        JOBS_DIR = folder
    return JOBS_DIR


POSTGRES_CONN_ID = os.environ.get("NIGHTSCORE_POSTGRES_CONN_ID", "nightscore_postgres")
AWS_CONN_ID = os.environ.get("NIGHTSCORE_AWS_CONN_ID", "nightscore_s3")

# Errors that another attempt cannot fix: fail the task at once instead of retrying.
NO_RETRY = ExceptionRetryPolicy(
    rules=[
        RetryRule(
            exception=[
                "pipeline.errors.ValidationFailed",
                "pipeline.errors.JobSpecError",
                "pipeline.errors.ModelError",
                "pipeline.errors.ConfigError",
            ],
            action=RetryAction.FAIL,
            reason="the input or the configuration is wrong; a retry would fail the same way",
        )
    ]
)

DEFAULT_ARGS: dict[str, Any] = {
    "retries": 3,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=30),
    "retry_policy": NO_RETRY,
}


def _connection(conn_id: str) -> Any | None:
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None


def task_settings() -> Any:
    """`pipeline` settings for this task: environment defaults, then the Airflow connections if they exist.

    Without a ``nightscore_postgres`` connection the embedded PostgreSQL under ``.nightscore/`` is used
    (what ``make airflow`` runs on); without ``nightscore_s3`` the artifact store is NIGHTSCORE_ARTIFACT_URI.
    """
    import sqlalchemy as sa

    from pipeline.config import load_settings, settings_from_connections

    base = load_settings().with_overrides(jobs_dir=JOBS_DIR)
    pg = _connection(POSTGRES_CONN_ID)
    pg_uri = None
    if pg is not None:
        extra = pg.extra_dejson or {}
        query = {
            k: str(v)
            for k, v in extra.items()
            if k in ("sslmode", "sslrootcert", "sslcert", "sslkey", "options", "application_name", "connect_timeout")
        }
        host = pg.host or None
        if host and host.startswith("/"):  # a unix-socket directory goes in the query, as libpq expects
            query["host"], host = host, None
        pg_uri = sa.URL.create(
            "postgresql",
            username=pg.login or None,
            password=pg.password or None,
            host=host,
            port=pg.port or None,
            database=pg.schema or None,
            query=query,
        ).render_as_string(hide_password=False)
    aws = _connection(AWS_CONN_ID)
    aws_dict = None if aws is None else {"login": aws.login, "password": aws.password, "extra": aws.extra_dejson}
    settings = settings_from_connections(base, pg_uri, aws_dict)
    log.info(
        "database: %s (%s); artifacts: %s (%s)",
        "connection " + POSTGRES_CONN_ID if pg is not None else "NIGHTSCORE_DATABASE_URL or the embedded server",
        "set" if pg is not None else "no Airflow connection",
        settings.artifact_uri,
        "connection " + AWS_CONN_ID if aws is not None else "environment",
    )
    return settings


def _optional_int(value: Any) -> int | None:
    return None if value in (None, "") else int(value)


def _day(spec: Any, context: Any) -> date:
    from pipeline.schedule import resolve_ds

    dr = context["dag_run"]
    ds, why = resolve_ds(
        tz=spec.timezone,
        param_ds=context["params"].get("ds"),
        run_type=str(getattr(dr, "run_type", "") or ""),
        logical_date=getattr(dr, "logical_date", None),
        run_after=dr.run_after,
    )
    log.info("scoring %s: %s", spec.name, why)
    return ds


def _as_owner(context: Any) -> None:
    """Record this task instance and try as the owner of the runs it works on (``scoring_runs.owner_*``)."""
    from pipeline import runs

    ti = context["ti"]
    map_index = getattr(ti, "map_index", -1)
    task = f"{ti.dag_id}.{ti.task_id}" + (f"[{map_index}]" if map_index not in (None, -1) else "") + f" {ti.run_id}"
    runs.set_task(task, getattr(ti, "try_number", None))


def begin(job: str, context: Any) -> list[dict[str, Any]]:
    """Create the run record, resolve the model (alias or pinned version), plan the shards and create the
    loading table they fill. Returns one item per shard, ``{"state": <the run>, "index": i}``: what the mapped
    shard task expands over, and what publish and monitor read the run's state from."""
    from pipeline import run
    from pipeline.jobs import load_job

    _as_owner(context)
    settings = task_settings()
    spec = load_job(JOBS_DIR, job)
    params = context["params"]
    with run.interruptible():
        state = run.begin(
            settings,
            job,
            _day(spec, context),
            model_version=_optional_int(params.get("model_version")),
            dry_run=bool(params.get("dry_run")),
            airflow_run_id=context["dag_run"].run_id,
            shard_count=_optional_int(params.get("shards")),
        )
    log.info(
        "run %s: model %s v%s%s, %d shard(s)",
        state.run_id,
        state.model_name,
        state.model_version,
        " (pinned)" if state.pinned_version else "",
        state.shards,
    )
    dag_run = context["dag_run"]
    if str(getattr(dag_run, "run_type", "")).lower().endswith("backfill") and not (getattr(dag_run, "conf", None) or {}):
        log.warning(
            "this backfill run carries no run configuration, so no model_version: it scores with the %r alias (%s v%s). "
            "Airflow 3.3's backfill form sends its run parameters only when 'Override parameters on existing runs' is ticked; "
            "to pin a version, run the backfill again with that box ticked (or --dag-run-conf on the command line)",
            spec.model.alias,
            state.model_name,
            state.model_version,
        )
    return [{"state": state.to_dict(), "index": i, "model": model_label(state.to_dict(), spec.model.alias)} for i in range(state.shards)]


def shard_label(work: dict[str, Any], out: dict[str, Any] | None = None) -> str:
    """A shard task's name in the UI: its index, the day, (once done) its rows, and the model."""
    parts = [f"shard {work['index']}", str(work["state"]["ds"])]
    if out is not None:
        c = out.get("counts") or {}
        parts.append(f"{c.get('extracted', 0):,} rows, {c.get('quarantined', 0):,} quarantined")
    if work.get("model"):
        parts.append(work["model"])
    return " · ".join(parts)


def model_label(state: dict[str, Any], alias: str) -> str:
    """How the run's model shows in the UI: ``churn_xgb v3 (pinned)`` or ``churn_xgb v2 (champion)``."""
    how = "pinned" if state.get("pinned_version") else alias
    return f"{state.get('model_name')} v{state.get('model_version')} ({how})"


def shard(state: dict[str, Any], index: int, context: Any) -> dict[str, Any]:
    """One shard of the run, end to end (extract, validate, score, load), on whichever worker runs it. A retry
    of this task replaces what its earlier try loaded, nothing else."""
    from pipeline import run

    _as_owner(context)
    with run.interruptible():
        out = run.shard_step(task_settings(), run.RunState.from_dict(state), index)
    log.info(
        "run %s %s %s: shard %d of %d done (try %d); counts %s", out.run_id, out.job, out.ds, index, out.shards, out.attempt, out.counts
    )
    return {"shard": index, "attempt": out.attempt, "counts": out.counts, "seconds": out.seconds}


def step(name: str, state: dict[str, Any], context: Any | None = None) -> dict[str, Any]:
    """Run a day-level step (publish, finish) on the run's state once every shard is loaded.

    SIGTERM (Airflow stopping the task) ends the step as ``interrupted``, after its clean-up."""
    from pipeline import run

    if context is not None:
        _as_owner(context)
    fn = {"publish": run.publish_step, "finish": run.finish_step}[name]
    with run.interruptible():
        out = fn(task_settings(), run.RunState.from_dict(state))
    log.info("run %s %s %s: %s done; counts %s", out.run_id, out.job, out.ds, name, out.counts)
    return out.to_dict()


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
        from pipeline.jobs import load_job

        spec = load_job(JOBS_DIR, self.job)
        if not (spec.alerts.configured and spec.alerts.on_failure):
            return
        dag_run, ti = context.get("dag_run"), context.get("ti")
        airflow_run_id = getattr(dag_run, "run_id", None) or context.get("run_id")
        task = getattr(ti, "task_id", None)
        row = _ledger_row(airflow_run_id)
        error = (row or {}).get("error") or f"task {task or '?'} failed; its log says why"
        alerts.send(
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
    from pipeline.jobs import load_job

    spec = load_job(JOBS_DIR, job)
    dag_run = (context or {}).get("dag_run") or {}
    airflow_run_id = dag_run.get("dag_run_id") or dag_run.get("run_id")
    if str(dag_run.get("run_type", "scheduled")).lower() != "scheduled":
        # a backfill or manual run of an old day is past its deadline from the start: not news
        log.info("deadline %s of %s passed for a %s run (%s): no alert", deadline, job, dag_run.get("run_type"), airflow_run_id)
        return
    row = _ledger_row(airflow_run_id)
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
    where = f"the run is {row['status']} in {row.get('stage') or 'its first stage'}" if row else f"the Airflow run is {dag_run.get('state', 'not started')}"
    alerts.send(
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


def _ledger_row(airflow_run_id: str | None) -> dict[str, Any] | None:
    """The latest ``scoring_runs`` row of an Airflow run (None if it never got that far, or on any error)."""
    if not airflow_run_id:
        return None
    try:
        import sqlalchemy as sa

        from pipeline import db

        with db.engine(task_settings()).connect() as conn:
            row = (
                conn.execute(
                    sa.text("SELECT * FROM scoring_runs WHERE airflow_run_id = :r ORDER BY started_at DESC LIMIT 1"), {"r": airflow_run_id}
                )
                .mappings()
                .first()
            )
        return dict(row) if row else None
    except Exception as exc:
        log.warning("the alert could not read the run's ledger row: %s", str(exc).splitlines()[0])
        return None


class _ArtifactLink(BaseOperatorLink):
    """A button on the monitor task: one of the run's artifacts, at an address the browser can open (a
    presigned S3 link valid 7 days, or a file:// path for a local store). Computed by the task when it
    ends and kept in its XCom, where Airflow's UI reads it."""

    name = ""
    field = ""

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        from pipeline.storage import open_store

        state = ti_key.xcom_pull(task_ids=ti_key.task_id) or {}
        uri = state.get(self.field)
        if not uri:
            return ""
        store = open_store(task_settings())
        return store.link(store.key(uri))


class DataDocsLink(_ArtifactLink):
    name = "Data Docs"
    field = "data_docs_uri"


class ManifestLink(_ArtifactLink):
    name = "Run manifest"
    field = "manifest_uri"


class RunReportLink(_ArtifactLink):
    name = "Run report"
    field = "report_uri"


REPORT_LINKS = (RunReportLink(), DataDocsLink(), ManifestLink())


def drift_asset(job: str) -> Any:
    """A day of ``job`` whose drift reached its alert level: ``train_<job>`` is scheduled on it, beside its cron."""
    from airflow.sdk import Asset

    return Asset(name=f"nightscore_drift_{job}", uri=f"nightscore://drift/{job}", group="nightscore")


def performance_asset(job: str) -> Any:
    """A day of ``job`` whose delayed-label performance reached its alert level (emitted by ``evaluate_<job>``)."""
    from airflow.sdk import Asset

    return Asset(name=f"nightscore_performance_{job}", uri=f"nightscore://performance/{job}", group="nightscore")


def retrain_assets(job: str) -> Any:
    """What ``train_<job>`` is scheduled on beside its cron: drift *or* performance at its alert level."""
    return drift_asset(job) | performance_asset(job)


def evaluate(job: str, context: Any) -> dict[str, Any]:
    """Evaluate the ``ds`` parameter's day, or every published day whose outcomes have matured and that has
    no evaluation yet; return them and the performance Asset event's ``extra`` (None below the alert level)."""
    from pipeline.evaluate import alert_extra, evaluate_day, evaluate_matured
    from pipeline.jobs import load_job, parse_ds
    from pipeline.metrics import export
    from pipeline.schedule import latest_complete_day

    settings = task_settings()
    spec = load_job(JOBS_DIR, job)
    params = context["params"]
    today = latest_complete_day(context["dag_run"].run_after, spec.timezone) + timedelta(days=1)
    if params.get("ds"):
        found = [evaluate_day(settings, spec, parse_ds(params["ds"], where="the ds parameter"), today=today, early=bool(params.get("early")))]
    else:
        found = evaluate_matured(settings, spec, today)
        if not found:
            log.info("%s: no published day whose outcomes matured by %s is left to evaluate", job, today)
    if found:
        export(settings, job)
    return {"evaluations": [e.to_dict() for e in found], "alert": alert_extra(found)}


def drift_extra(state: dict[str, Any]) -> dict[str, Any] | None:
    """The drift Asset event's ``extra`` (what crossed its alert level, on which day and model), or None when
    nothing did."""
    drift = state.get("drift") or {}
    if drift.get("level") != "alert":
        return None
    return {"trigger": "drift", **_run_facts(state), "alerts": drift.get("alerts", [])}


def _run_facts(state: dict[str, Any]) -> dict[str, Any]:
    """Which day, run and model a run's Asset events speak of (the start of each event's ``extra``)."""
    return {
        "job": state["job"],
        "ds": state["ds"],
        "run_id": state["run_id"],
        "model_name": state.get("model_name"),
        "model_version": state.get("model_version"),
    }


def drift_events(context: Any) -> list[dict[str, Any]]:
    """The ``extra`` of each drift or performance Asset event that started this run (none for a scheduled or
    manual run)."""
    events = context.get("triggering_asset_events") or {}
    found = []
    for _asset, evs in getattr(events, "items", lambda: [])():
        for ev in evs:
            extra = dict(getattr(ev, "extra", None) or {})
            if extra.get("alerts") is not None:
                found.append(extra)
    return found


def training_reason(context: Any) -> str:
    """Why this training run runs, for its log: the drift events that started it, or its schedule / a person."""
    found = drift_events(context)
    if found:
        return "; ".join(
            f"{e.get('trigger', 'drift')} reached its alert level: {e.get('job')} {e.get('ds')} (model v{e.get('model_version')}): "
            + ", ".join(e["alerts"])
            for e in found
        )
    run_type = str(getattr(context.get("dag_run"), "run_type", "") or "")
    return "its schedule" if run_type.lower().endswith("scheduled") else f"a {run_type or 'manual'} run"


def published_extra(state: dict[str, Any]) -> dict[str, Any]:
    """The ``extra`` of the Asset event a publish emits: which day, run and model, and the counts."""
    counts = state.get("counts") or {}
    return {
        **_run_facts(state),
        "shards": state.get("shards", 1),
        "rows_published": counts.get("published", 0),
        "rows_quarantined": counts.get("quarantined", 0),
    }


def train(job: str, context: Any) -> dict[str, Any]:
    """Train, register, and promote to the alias only if the new model beats it by the spec's margin."""
    from pipeline.jobs import load_job, parse_ds
    from pipeline.schedule import latest_complete_day
    from pipeline.train import train_model

    log.info("training %s because of %s", job, training_reason(context))
    settings = task_settings()
    spec = load_job(JOBS_DIR, job)
    params = context["params"]
    drifted = [e["ds"] for e in drift_events(context) if e.get("ds")]
    if params.get("end"):
        end = parse_ds(params["end"], where="the end parameter")
    elif drifted:  # started by drift: hold out the days up to the drifted one, so the new model has seen them
        end = parse_ds(max(drifted), where="the drift event's ds")
    else:
        end = latest_complete_day(context["dag_run"].run_after, spec.timezone)
    result = train_model(settings, spec, end=end, promote=params.get("promote") or "if_better")
    log.info("%s v%s trained on the window ending %s: %s", result.model_name, result.version, end, result.metrics)
    log.info("%s", result.reason)
    return {
        "model": result.model_name,
        "version": result.version,
        "metrics": result.metrics,
        "registered": result.registered,
        "promoted": result.promoted,
        "reason": result.reason,
        "champion_before": result.champion_before,
    }
