"""The day as a whole: :func:`begin` (the run record, its model, its shard plan, its loading table),
:func:`gather` (the shards' outcomes), :func:`publish_step` (the day's rules over every shard, then one
atomic swap: the run's point of success) and :func:`finish_step` (drift, the report, the manifest,
``succeeded``)."""

from __future__ import annotations

import logging
import shutil
import uuid
from datetime import date
from typing import Any

from pipeline import db, registry, runs, shards
from pipeline.config import Settings
from pipeline.errors import NightscoreError, ShardsFailed
from pipeline.jobs import load_job
from pipeline.metrics import export as export_metrics
from pipeline.run.artifacts import local_files, record_drift, write_day_reports, write_manifest, write_run_report
from pipeline.run.frame import StageContext, retrying, run_stage
from pipeline.run.state import RunState
from pipeline.shadow import plan as shadow_plan
from pipeline.shadow import settle as shadow_settle
from pipeline.storage import open_store, run_prefix

log = logging.getLogger(__name__)
SHARD_STAGES = ("extract", "validate", "score", "load")


def begin(
    settings: Settings,
    job: str,
    ds: date,
    *,
    model_version: int | None = None,
    dry_run: bool = False,
    airflow_run_id: str | None = None,
    shard_count: int | None = None,
    shadow: list[int | str] | None = None,
) -> RunState:
    """Create the run record, resolve the model (failing fast if there is none), plan the shards (the job
    spec's ``shards``, unless ``shard_count`` overrides it) and create the loading table they fill.
    ``shadow``: the shadow models to score beside it (default: the spec's ``model.shadow``; one that does
    not resolve is recorded, never an error of the day). Dead runs are reaped first."""
    from pipeline.ledger import ready_engine  # reaps: reap imports publish, which this module imports only when publishing
    from pipeline.publish import create_loading_table, loading_table_name

    spec = load_job(settings.jobs_dir, job)
    eng = ready_engine(settings)
    store = open_store(settings)
    run_id = str(uuid.uuid4())
    n = shards.resolve(spec.shards, shard_count)
    state = RunState(
        run_id=run_id,
        job=job,
        ds=ds.isoformat(),
        prefix=run_prefix(job, ds.isoformat(), run_id),
        dry_run=dry_run,
        pinned_version=model_version,
        airflow_run_id=airflow_run_id,
        shards=n,
    )
    runs.start(eng, run_id, job, ds, dry_run=dry_run, airflow_run_id=airflow_run_id, artifacts_uri=store.uri(state.prefix))
    with run_stage(settings, state, "resolve_model") as ctx:
        mv = registry.resolve(ctx.eng, spec.model.name, spec.model.alias, model_version)
        state.model_name, state.model_version, state.model_sha256 = mv.name, mv.version, mv.sha256
        if not dry_run:
            state.loading_table = loading_table_name(run_id)
            create_loading_table(ctx.eng, state.loading_table, job, ds, spec.model.kind)
            if spec.explain:
                from pipeline.publish import create_side_table

                create_side_table(ctx.eng, state.loading_table, "reasons", job, ds)
        runs.update(
            ctx.eng,
            run_id,
            model_name=mv.name,
            model_version=mv.version,
            model_sha256=mv.sha256,
            shards=n,
            loading_table=state.loading_table,
        )
        runs.plan_shards(ctx.eng, run_id, n)
        state.shadows = shadow_plan(ctx.eng, spec, state, mv, spec.model.shadow if shadow is None else shadow)
    return state


def gather(settings: Settings, state: RunState) -> RunState:
    """The shards' outcomes into the run's state: raise the first failure, else sum the counts."""
    eng = db.ready_engine(settings)
    rows = runs.shards(eng, state.run_id)
    failed = [r for r in rows if r["status"] != "loaded"]
    if failed:
        first = failed[0]
        detail = first.get("error_detail") or {}
        label = (
            f"shard {first['shard']}/{state.shards} {first.get('stage') or ''}".strip()
            if state.shards > 1
            else (first.get("stage") or "shard")
        )
        if detail.get("what"):
            import pipeline.errors as errors

            cls = getattr(errors, str(detail.get("kind")), None)
            cls = cls if isinstance(cls, type) and issubclass(cls, NightscoreError) else ShardsFailed
            error: NightscoreError = cls(detail["what"], where=detail.get("where"), fix=detail.get("fix"))
        else:
            status = first["status"]
            error = ShardsFailed(
                f"shard {first['shard']} of {state.shards} did not finish ({'its worker process died' if status in ('running', 'pending') else status})",
                where=f"job {state.job}, ds {state.ds}, run {state.run_id}",
                fix="rerun the day (a killed worker is retried once; see the log for why it died); the published data was left as it was",
            )
        others = len(failed) - 1
        if others:
            error.args = (f"{error.args[0]} ({others} more shard(s) failed: `nightscore runs --show {state.run_id[:8]}` lists them)",)
        error._nightscore_stage = label  # type: ignore[attr-defined]
        raise error
    state.counts = {k: sum(int(r[f"rows_{k}"] or 0) for r in rows) for k in ("extracted", "valid", "quarantined", "scored", "loaded")}
    for stage in SHARD_STAGES:  # the slowest shard's time: what the day waited for
        times = [float((r["seconds"] or {}).get(stage, 0.0)) for r in rows]
        state.seconds[stage] = round(max(times), 4) if times else 0.0
    if state.shards == 1:
        r = rows[0]
        state.features_uri, state.features_sha256 = r["features_uri"], r["features_sha256"]
        state.validation_uri, state.data_docs_uri, state.predictions_uri = r["validation_uri"], r["data_docs_uri"], r["predictions_uri"]
    return state


def publish_step(settings: Settings, state: RunState) -> RunState:
    """The day as a whole: every shard loaded, its counts adding up, the day's validation rules over all
    shards; then one atomic swap (a dry run publishes nothing). A publish retried after its loading table
    was dropped loads the shards' stored predictions again first."""
    from pipeline.publish import publish_loaded
    from pipeline.validate import check_day

    with run_stage(settings, state, "publish") as ctx:
        state = gather(settings, state)
        c = state.counts
        if (
            c["extracted"] != c["valid"] + c["quarantined"]
            or c["scored"] != c["valid"]
            or (not state.dry_run and c["loaded"] != c["scored"])
        ):
            raise NightscoreError(
                f"the shards' counts do not add up: {c}",
                where=f"run_shards of run {state.run_id}",
                fix="rerun the day; the published data was left as it was",
            )
        runs.merge_stage_seconds(ctx.eng, state.run_id, {k: state.seconds[k] for k in SHARD_STAGES})
        runs.update(
            ctx.eng,
            state.run_id,
            rows_extracted=c["extracted"],
            rows_valid=c["valid"],
            rows_quarantined=c["quarantined"],
            rows_scored=c["scored"],
            validation_success=c["quarantined"] == 0,
        )
        if c["extracted"] == 0:  # no rows at all is not a contract problem: say what it is
            from pipeline.extract import no_rows_error

            raise no_rows_error(settings, ctx.spec, state.day, state.shards)
        check_day(
            ctx.spec, state.ds, c["extracted"], c["quarantined"], state.shards, where=f"job {state.job}, ds {state.ds}, run {state.run_id}"
        )
        if state.shards > 1:
            write_day_reports(ctx, state)
        if state.dry_run:
            state.counts["published"] = 0
            log.info("dry run: %s rows scored for %s %s, nothing published", c["scored"], state.job, state.ds)
            runs.update(ctx.eng, state.run_id, rows_published=0)
            return state
        _reload_if_dropped(settings, ctx, state)
        shadow_settle(settings, ctx.eng, ctx.store, state)  # a shadow model that failed anywhere: its rows out
        assert state.loading_table
        explain = ctx.spec.explain
        max_reasons = explain.max_rows if explain and explain.max_rows != "all" else None
        pub = publish_loaded(
            settings, state.job, state.day, state.loading_table, state.run_id, c["loaded"], max_reasons=max_reasons
        )  # marks the run published
        state.counts["published"] = pub.rows
    _alert_quarantine(settings, state)
    return state


def _alert_quarantine(settings: Settings, state: RunState) -> None:
    """A published day with more of its rows quarantined than the spec's ``alerts.quarantine_share``: tell
    the people the spec names (the day is published; the alert is news, not a failure)."""
    from pipeline import alerts

    spec = load_job(settings.jobs_dir, state.job)
    limit, c = spec.alerts.quarantine_share, state.counts
    if limit is None or not c.get("extracted") or c.get("quarantined", 0) / c["extracted"] <= limit:
        return
    share = c["quarantined"] / c["extracted"]
    alerts.route(
        db.engine(settings),
        spec.alerts,
        alerts.Alert(
            job=state.job,
            ds=state.ds,
            kind="quarantine",
            summary=f"published with {c['quarantined']:,} of {c['extracted']:,} rows quarantined ({share:.2%}, alert above {limit:.2%})",
            detail=f"the reasons: nightscore runs --show {state.run_id}, or SELECT reasons FROM quarantined_rows WHERE run_id = '{state.run_id}'",
            run_id=state.run_id,
            airflow_run_id=state.airflow_run_id,
            crossed=[alerts.crossing("quarantined share", round(share, 6), limit, "alert")],
        ),
    )


def _alert_drift(ctx: StageContext, state: RunState) -> None:
    """The day's drift at warn or alert, through the job's alert rules: which features and metrics crossed
    which threshold, and how many published days in a row the drift has lasted (``consecutive_days``)."""
    from datetime import date, timedelta

    from pipeline import alerts

    level = (state.drift or {}).get("level")
    if level not in ("warn", "alert"):
        return
    spec = ctx.spec
    rule = spec.alerts.rule("drift")
    floor = alerts.LEVELS.index(rule.min_level)
    crossed = [
        alerts.crossing(f"{m['feature']} {m['metric']}", m["value"], getattr(spec.drift, m["metric"]), m["level"])
        for m in _drift_rows(ctx, state)
        if m["level"] in ("warn", "alert") and alerts.LEVELS.index(m["level"]) >= floor
    ]
    day = date.fromisoformat(state.ds)
    streak = 1
    if rule.consecutive_days > 1:  # the days before this one, newest first, while each reached the rule's level
        with ctx.eng.connect() as conn:
            rows = conn.execute(
                db.query("drift_levels_before"), {"job": state.job, "start": day - timedelta(days=rule.consecutive_days - 1), "ds": day}
            ).all()
        levels = {r.ds: r.level for r in rows}
        streak = 0
        while levels.get(day - timedelta(days=streak)) in alerts.LEVELS[max(floor, 1) :]:
            streak += 1
    names = ", ".join(c["what"] for c in crossed) or ", ".join((state.drift or {}).get("alerts") or [])
    alerts.route(
        ctx.eng,
        spec.alerts,
        alerts.Alert(
            job=state.job,
            ds=state.ds,
            kind="drift",
            level=level,
            summary=f"drift at its {level} level: {names}" + (f" ({streak} days in a row)" if streak > 1 else ""),
            detail=f"nightscore report --job {state.job}; the day's metrics: SELECT * FROM drift_metrics WHERE run_id = '{state.run_id}'",
            run_id=state.run_id,
            airflow_run_id=state.airflow_run_id,
            links={"report": state.report_uri} if state.report_uri else {},
            crossed=crossed,
        ),
        streak=streak,
    )


def _drift_rows(ctx: StageContext, state: RunState) -> list[dict[str, Any]]:
    """The run's drift metrics as recorded (``record_drift`` moved them from the state to ``drift_metrics``)."""
    with ctx.eng.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(db.query("list_run_drift_metrics"), {"r": state.run_id})]


def _reload_if_dropped(settings: Settings, ctx: StageContext, state: RunState) -> None:
    """A publish retried after a failed one finds its loading table gone: load the shards' files again."""
    from pipeline.publish import STAGING_SCHEMA, create_loading_table, create_side_table, load_shard, load_side, loading_table_name

    with ctx.eng.connect() as conn:
        exists = conn.execute(db.query("find_table"), {"t": f'{STAGING_SCHEMA}."{state.loading_table}"'}).scalar()
    if exists:
        return
    state.loading_table = loading_table_name(state.run_id)
    create_loading_table(ctx.eng, state.loading_table, state.job, state.day, ctx.spec.model.kind)
    if ctx.spec.explain:
        create_side_table(ctx.eng, state.loading_table, "reasons", state.job, state.day)
    runs.update(ctx.eng, state.run_id, loading_table=state.loading_table)
    for r in runs.shards(ctx.eng, state.run_id):
        with ctx.store.local_path(ctx.store.key(r["predictions_uri"])) as path:
            load_shard(settings, ctx.eng, path, state.loading_table, r["shard"], state.shards, clear=False)
        reasons_uri = (r.get("resources") or {}).get("reasons_uri")
        if reasons_uri:
            with ctx.store.local_path(ctx.store.key(reasons_uri)) as path:
                load_side(settings, path, state.loading_table, "reasons", r["shard"])
    log.info("run %s: loading table dropped by an earlier try; the %d shards' predictions loaded again", state.run_id, state.shards)


def finish_step(settings: Settings, state: RunState) -> RunState:
    """Monitor drift over every shard's scores, write the manifest (last), and mark the run succeeded."""
    from pipeline.monitor import drift_report

    with run_stage(settings, state, "monitor") as ctx:
        published = state.counts.get("published")
        state = gather(settings, state)  # the shards' counts (an Airflow dry run hands over begin's state)
        state.counts["published"] = (
            published if published is not None else int((runs.get(ctx.eng, state.run_id) or {}).get("rows_published") or 0)
        )

        from pipeline import estimate

        day_scores: dict[str, Any] = {}  # for the estimate before labels, read while the shards' files are at hand

        def monitor_and_record() -> None:
            from pipeline.explain import merge_summaries

            parts = runs.shards(ctx.eng, state.run_id)
            state.explain = merge_summaries([(r.get("resources") or {}).get("explain") for r in parts])
            uris = [r["predictions_uri"] for r in parts]
            with local_files(ctx.store, uris) as paths:
                state.drift = drift_report(ctx.store, ctx.eng, ctx.spec, state.model_version, paths, [r.get("drift_counts") for r in parts])
                if estimate.wanted(ctx.spec) and not state.dry_run:
                    day_scores["scores"] = estimate.read_scores(paths)
            record_drift(ctx, state)
            state.report_uri = write_run_report(ctx, state)
            state.manifest_uri = write_manifest(settings, state, ctx.eng, status="succeeded")
            runs.finish(ctx.eng, state.run_id, "succeeded", drift=state.drift, manifest_uri=state.manifest_uri, error=None)

        retrying(monitor_and_record, f"run {state.run_id}: monitor and manifest")
        if not state.dry_run:
            _alert_drift(ctx, state)
            estimate.after_publish(ctx.eng, ctx.spec, state, day_scores.get("scores"))
            export_metrics(settings, state.job, ctx.eng)
        shutil.rmtree(ctx.workdir, ignore_errors=True)
    return state
