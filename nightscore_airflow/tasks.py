"""The task bodies of nightscore's DAGs, a few lines each over ``pipeline``: pick the day, read the
connections, call one step, log what happened, return small JSON-friendly state for XCom."""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from nightscore_airflow.assets import drift_events, training_reason
from nightscore_airflow.connections import load_spec, task_settings

log = logging.getLogger(__name__)


def _optional_int(value: Any) -> int | None:
    return None if value in (None, "") else int(value)


def _day(spec: Any, context: Any) -> date:
    """The day a scoring run scores (:func:`pipeline.schedule.resolve_ds`, the rule docs/airflow.md states)."""
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
    from pipeline.shadow import parse_refs

    _as_owner(context)
    settings = task_settings(job)
    spec = load_spec(job)
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
            shadow=parse_refs([params["shadow"]] if params.get("shadow") else None, where="the shadow parameter"),
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
        out = run.shard_step(task_settings(state["job"]), run.RunState.from_dict(state), index)
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
        out = fn(task_settings(state["job"]), run.RunState.from_dict(state))
    log.info("run %s %s %s: %s done; counts %s", out.run_id, out.job, out.ds, name, out.counts)
    return out.to_dict()


def evaluate(job: str, context: Any) -> dict[str, Any]:
    """Evaluate the ``ds`` parameter's day, or every published day whose outcomes have matured and that has
    no evaluation yet; return them and the performance Asset event's ``extra`` (None below the alert level)."""
    from pipeline import lookback
    from pipeline.evaluate import alert_extra
    from pipeline.jobs import parse_ds
    from pipeline.schedule import job_today

    settings = task_settings(job)
    spec = load_spec(job)
    params = context["params"]
    today = job_today(spec.timezone, context["dag_run"].run_after)
    ds = parse_ds(params["ds"], where="the ds parameter") if params.get("ds") else None
    found = lookback.evaluate(settings, spec, ds, early=bool(params.get("early")), today=today)
    if not found:
        log.info("%s: no published day whose outcomes matured by %s is left to evaluate", job, today)
    return {"evaluations": [e.to_dict() for e in found], "alert": alert_extra(found)}


def train(job: str, context: Any) -> dict[str, Any]:
    """Train, register, and promote to the alias only if the new model beats it by the spec's margin."""
    from pipeline.jobs import parse_ds
    from pipeline.train import matured_until, train_model

    log.info("training %s because of %s", job, training_reason(context))
    settings = task_settings(job)
    spec = load_spec(job)
    params = context["params"]
    drifted = [e["ds"] for e in drift_events(context) if e.get("ds")]
    ready = matured_until(spec, context["dag_run"].run_after)
    if params.get("end"):
        end = parse_ds(params["end"], where="the end parameter")
    elif drifted:  # started by drift or performance: up to that day, but never past the labels that have matured
        end = min(parse_ds(max(drifted), where="the drift event's ds"), ready)
    else:  # the latest day whose labels have matured
        end = ready
    result = train_model(
        settings, spec, end=end, promote=params.get("promote") or "if_better", now=context["dag_run"].run_after
    )
    for note in result.notes or []:
        log.warning("%s", note)
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
